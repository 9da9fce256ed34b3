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

--- A path nothing exists at yet (os.tmpname's name, the file removed).
function M.fresh_path()
  local p = os.tmpname()
  os.remove(p)
  return p
end

--- A file's permission bits as octal text ("600").
function M.mode(path)
  local p = io.popen("stat -c %a " .. M.quote(path))
  local m = p:read("*l")
  p:close()
  return m
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

--- Runs a shell command: its exit status and its output (stdout and stderr).
function M.sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"EXIT=$?\"")
  local out = p:read("*a")
  p:close()
  return tonumber(out:match("EXIT=(%d+)%s*$")), (out:gsub("EXIT=%d+%s*$", ""))
end

--- The working directory (specs run from the repository root).
function M.cwd()
  local p = io.popen("pwd")
  local d = p:read("*l")
  p:close()
  return d
end

return M
