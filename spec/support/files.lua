--- Shell quoting, temporary directories and whole-file I/O for specs and
-- benches (the OpenSSL and ffmpeg peers re-export these).
local M = {}

function M.quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

--- A fresh directory /tmp/<prefix>.XXXXXX (prefix defaults to wxhw-spec).
function M.tmpdir(prefix)
  local p = io.popen("mktemp -d /tmp/" .. (prefix or "wxhw-spec") .. ".XXXXXX")
  local dir = p:read("*l")
  p:close()
  return dir
end

function M.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

function M.write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  return path
end

return M
