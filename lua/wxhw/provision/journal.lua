--- The provisioning journal: an append-only file of checksummed lines, one per
-- completed step, written before the step's effect is trusted and fsync'd in
-- groups. A run killed at any point reloads it and continues; a torn last
-- line (power loss mid-write) is detected by its checksum and cut off.
--
--   local j = assert(journal.open(path))   -- locked until j:close() or exit
--   j.records            -- the records read back, in order (tables)
--   j:append(rec)        -- { t = "D", ... } encoded as JSON, checksummed
--   j:sync()             -- fsync (group commit)
--   j:close()
local cjson = require "cjson.safe"
local crypto = require "wxhw.crypto"
local fileio = require "wxhw.fileio"
local errors = require "wxhw.errors"

local M = {}
local J = {}
J.__index = J

local function check(payload)
  return crypto.hex(crypto.sha1(payload)):sub(1, 8)
end

--- Opens (creating if needed), locks, and reads back every intact record.
-- `on_record` (optional) sees each record as it is read instead of keeping
-- them all. One process at a time: while another holds the journal this
-- answers nil, err with err.reason = "locked" and touches nothing.
function M.open(path, on_record)
  local existed = io.open(path, "rb")
  if existed then existed:close() end
  -- "a+" creates without truncating: a second run must not cut the first's file
  local out, oerr = io.open(path, "a+b")
  if not out then return errors.fail("io", "cannot open the journal " .. path .. ": " .. tostring(oerr)) end
  local locked, lerr = fileio.lock(out)
  if not locked then
    out:close()
    if locked == nil then return nil, lerr end
    return errors.fail("state", ("another run of this job is still running (it holds the journal %s): " ..
      "wait for it to finish, or stop it and run again with --resume"):format(path), { reason = "locked" })
  end
  local records, good, torn = {}, 0, false
  local f = io.open(path, "rb")
  if f then
    local buf, pos = "", 1
    while not torn do
      local nl = buf:find("\n", pos, true)
      if not nl then
        local chunk = f:read(65536)
        if not chunk then break end -- a tail without a newline is torn
        buf, pos = buf:sub(pos) .. chunk, 1
      else
        local body = buf:sub(pos, nl - 1)
        local payload, sum = body:match("^(.*)\t(%x%x%x%x%x%x%x%x)$")
        local rec = payload and check(payload) == sum and cjson.decode(payload)
        if type(rec) ~= "table" then torn = true; break end
        good = good + (nl - pos + 1)
        pos = nl + 1
        if on_record then on_record(rec) else records[#records + 1] = rec end
      end
    end
    if buf:find("%S", pos) then torn = true end
    f:close()
  end
  local ok, terr = fileio.truncate(out, good) -- drops a torn tail; positions at the end
  if not ok then out:close(); return nil, terr end
  local self = setmetatable({ path = path, f = out, records = records, torn = torn, size = good, dirty = false }, J)
  if not existed then
    local dir = path:match("^(.*)/[^/]*$") or "."
    fileio.fsync_dir(dir)
  end
  return self
end

--- Drops every record (a job started over with --force); keeps the lock.
function J:reset()
  local ok, err = fileio.truncate(self.f, 0)
  if not ok then return nil, err end
  self.size, self.records, self.dirty = 0, {}, true
  return true
end

--- Appends one record. The write reaches the kernel at once (a kill -9 after
-- this returns loses nothing); `sync` makes it survive power loss.
function J:append(rec)
  local payload = cjson.encode(rec)
  local line = payload .. "\t" .. check(payload) .. "\n"
  local ok, err = self.f:write(line)
  if not ok then return errors.fail("io", "journal write failed: " .. tostring(err)) end
  self.f:flush()
  self.size = self.size + #line
  self.dirty = true
  return true
end

function J:sync()
  if not self.dirty then return true end
  local ok, err = fileio.fsync(self.f)
  if not ok then return nil, err end
  self.dirty = false
  return true
end

function J:close()
  if self.f then
    self:sync()
    self.f:close()
    self.f = nil
  end
end

return M
