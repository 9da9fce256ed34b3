--- The manifest the factory flashes from: one row per input row, in input
-- order, as CSV or JSON lines (by the file name). Written to "<out>.part"
-- and renamed when the job is complete; `truncate` lets a resumed run cut
-- back to the last row the journal vouches for.
local cjson = require "cjson.safe"
local number_text = require("wxhw.json").id -- 9800015, not 9800015.0 (Lua 5.4 floats from JSON)
local fileio = require "wxhw.fileio"
local errors = require "wxhw.errors"

local M = {}
local W = {}
W.__index = W

M.COLUMNS = { "line", "device_id", "sn", "product_id", "key_version", "signature", "qr_code",
  "group_id", "status", "errcode", "error" }

function M.format_of(path)
  local ext = path:lower():match("%.(%w+)$")
  if ext == "jsonl" or ext == "ndjson" or ext == "json" then return "jsonl" end
  return "csv"
end

local function csv_field(v)
  if v == nil then return "" end
  v = number_text(v)
  if v:find('[,"\r\n]') then return '"' .. v:gsub('"', '""') .. '"' end
  return v
end
M.csv_field = csv_field

--- Opens "<path>.part" for appending at `offset` (0 = start afresh).
function M.open(path, offset)
  local part = path .. ".part"
  if offset and offset > 0 and not io.open(part, "rb") and io.open(path, "rb") then
    os.rename(path, part) -- finished but not journaled as finished: continue it
  end
  local f, err = io.open(part, offset and offset > 0 and "r+b" or "wb")
  if not f then return errors.fail("io", "cannot write the manifest " .. part .. ": " .. tostring(err)) end
  local self = setmetatable({ path = path, part = part, f = f, format = M.format_of(path), rows = 0 }, W)
  if offset and offset > 0 then
    local ok, terr = fileio.truncate(f, offset)
    if not ok then f:close(); return nil, terr end
  elseif self.format == "csv" then
    f:write(table.concat(M.COLUMNS, ","), "\n")
  end
  return self
end

local find = string.find
local function cf(v) -- csv_field without the table walk (hot path)
  if v == nil then return "" end
  if type(v) ~= "string" then return number_text(v) end
  if find(v, '[,"\r\n]') then return '"' .. v:gsub('"', '""') .. '"' end
  return v
end

function W:write(row)
  if self.format == "csv" then
    self.f:write(cf(row.line), ",", cf(row.device_id), ",", cf(row.sn), ",", cf(row.product_id), ",",
      cf(row.key_version), ",", cf(row.signature), ",", cf(row.qr_code), ",", cf(row.group_id), ",",
      cf(row.status), ",", cf(row.errcode), ",", cf(row.error), "\n")
  else
    local t = {}
    for _, c in ipairs(M.COLUMNS) do
      local v = row[c]
      if v ~= nil and v ~= "" then t[c] = v end
    end
    self.f:write(cjson.encode(t), "\n")
  end
  self.rows = self.rows + 1
end

--- Flushes and fsyncs; returns the byte size to journal.
function W:sync()
  local ok, err = fileio.fsync(self.f)
  if not ok then return nil, err end
  return fileio.size(self.f)
end

--- Final rename: "<path>.part" → path, durably.
function W:finish()
  local size, err = self:sync()
  if not size then return nil, err end
  self.f:close(); self.f = nil
  local ok, rerr = os.rename(self.part, self.path)
  if not ok then return errors.fail("io", "cannot rename the manifest: " .. tostring(rerr)) end
  fileio.fsync_dir(self.path:match("^(.*)/[^/]*$") or ".")
  return true
end

function W:close() if self.f then self.f:close(); self.f = nil end end

return M
