--- Streamed device lists: CSV (with a header row) or JSON lines. Reads the file
-- in fixed blocks, so memory stays flat however many rows there are, and
-- fingerprints the bytes it read (a job must resume against the same input).
--
--   local r = assert(input.open("devices.csv", { columns = { "device_id", "sn" } }))
--   for row in r:rows() do
--     -- row.line, row.device_id, row.sn, ... or row.error (a per-row message)
--   end
--   r.fingerprint  -- "<bytes>:<sha1 hex>" once every row has been read
--   r:close()
local crypto = require "wxhw.crypto"
local cjson = require "cjson.safe"
local errors = require "wxhw.errors"

local M = {}
local Reader = {}
Reader.__index = Reader

local BLOCK = 1024 * 1024
-- row.error is the reader's own per-row message: an input column named
-- "error" (a manifest read back) arrives as row.error_text.
local FIELD = { error = "error_text" }
local find, sub, byte = string.find, string.sub, string.byte

--- Format from the name, else from the first byte ("{" means JSON lines).
function M.detect(path, first)
  local ext = path:lower():match("%.(%w+)$")
  if ext == "csv" then return "csv" end
  if ext == "jsonl" or ext == "ndjson" or ext == "json" then return "jsonl" end
  if first and first:match("^%s*{") then return "jsonl" end
  return "csv"
end

-- One CSV record (RFC 4180: "" escapes a quote, quoted fields may hold commas
-- and newlines). Returns the fields or nil, reason.
local function split_quoted(s)
  local out, n, pos, len = {}, 0, 1, #s
  while true do
    n = n + 1
    if byte(s, pos) == 34 then -- "
      local buf, i = {}, pos + 1
      while true do
        local q = find(s, '"', i, true)
        if not q then return nil, "unterminated quoted field" end
        buf[#buf + 1] = sub(s, i, q - 1)
        if byte(s, q + 1) == 34 then
          buf[#buf + 1] = '"'
          i = q + 2
        else
          pos = q + 1
          break
        end
      end
      out[n] = table.concat(buf)
      local c = byte(s, pos)
      if c == nil then return out end
      if c ~= 44 then return nil, "text after a closing quote in field " .. n end
      pos = pos + 1
    else
      local c = find(s, ",", pos, true)
      local field = sub(s, pos, (c or len + 1) - 1)
      if find(field, '"', 1, true) then return nil, "quote inside an unquoted field " .. n end
      out[n] = field
      if not c then return out end
      pos = c + 1
    end
  end
end

local function split(s)
  if not find(s, '"', 1, true) then
    local out, n, pos = {}, 0, 1
    while true do
      local c = find(s, ",", pos, true)
      n = n + 1
      if not c then out[n] = sub(s, pos); return out end
      out[n] = sub(s, pos, c - 1)
      pos = c + 1
    end
  end
  return split_quoted(s)
end
M.split_csv = split

--- opts: format ("csv"|"jsonl", default from the name), columns (names to
-- return; default device_id, sn), required (default { "device_id" }).
function M.open(path, opts)
  opts = opts or {}
  if type(path) ~= "string" then error("input.open: path must be a string", 2) end
  local f, ferr = io.open(path, "rb")
  if not f then return errors.fail("input", "cannot open the device list: " .. tostring(ferr)) end
  local self = setmetatable({ path = path, f = f, buf = "", pos = 1, line = 0, bytes = 0,
    digests = {}, columns = opts.columns or { "device_id", "sn" },
    required = opts.required or { "device_id" }, eof = false }, Reader)
  self:_fill()
  self.format = opts.format or M.detect(path, sub(self.buf, 1, 64))
  if self.format ~= "csv" and self.format ~= "jsonl" then
    error("input.open: format must be csv or jsonl", 2)
  end
  if self.format == "csv" then
    local ok, err = self:_header()
    if not ok then f:close(); return nil, err end
  end
  return self
end

function Reader:_fill()
  if self.eof then return false end
  local chunk = self.f:read(BLOCK)
  if not chunk then self.eof = true; return false end
  self.bytes = self.bytes + #chunk
  self.digests[#self.digests + 1] = crypto.sha1(chunk)
  if #self.digests >= 64 then self.digests = { crypto.sha1(table.concat(self.digests)) } end
  if self.pos > #self.buf then self.buf = chunk else self.buf = sub(self.buf, self.pos) .. chunk end
  self.pos = 1
  return true
end

-- Next physical line without its terminator, or nil at the end.
function Reader:_line()
  while true do
    local nl = find(self.buf, "\n", self.pos, true)
    if nl then
      local s = sub(self.buf, self.pos, nl - 1)
      self.pos = nl + 1
      self.line = self.line + 1
      if byte(s, -1) == 13 then s = sub(s, 1, -2) end
      return s
    end
    if not self:_fill() then
      if self.pos <= #self.buf then
        local s = sub(self.buf, self.pos)
        self.pos = #self.buf + 1
        self.line = self.line + 1
        if byte(s, -1) == 13 then s = sub(s, 1, -2) end
        return s
      end
      if not self.fingerprint then
        self.fingerprint = string.format("%d:%s", self.bytes,
          crypto.hex(crypto.sha1(table.concat(self.digests))))
      end
      return nil
    end
  end
end

-- How many fields a line has when read as the start of a row of its own, and
-- whether it opens a quoted field after its first separator (a row whose
-- last fields run on). A quoted field is closed by the first single quote;
-- text after it runs to the next comma (the row is malformed, but a row).
local function fields_as_row(s)
  local n, pos = 0, 1
  while true do
    n = n + 1
    if byte(s, pos) == 34 then
      local i = pos + 1
      while true do
        local q = find(s, '"', i, true)
        if not q then return n, n > 1 end
        if byte(s, q + 1) ~= 34 then pos = q + 1; break end
        i = q + 2
      end
    end
    local c = find(s, ",", pos, true)
    if not c then return n, false end
    pos = c + 1
  end
end

-- A whole CSV record (RFC 4180): physical lines are joined while a quoted
-- field is open, except that a line which reads as a row of its own (as many
-- fields as the header, or one opening a quoted field after a comma) is
-- never taken into a field opened above it. An open quote that meets such a
-- line, the end of the file or MAX_RECORD_LINES is a malformed row at the
-- line that opened it, and every line after it is read again as a row: a
-- stray quote costs its own row and no other.
local MAX_RECORD_LINES = 8

function Reader:_next_line()
  local pb = self.pushback
  if pb and #pb > 0 then
    local item = table.remove(pb)
    self.line = item[2]
    return item[1]
  end
  return self:_line()
end

function Reader:_row_like(s)
  if not find(s, "%S") then return false end
  local n, opens = fields_as_row(s)
  return n >= self.ncols or opens
end

-- Returns the record and its first line, or nil at the end; a malformed
-- multi-line record comes back as nil, message (its first line is in
-- self.record_line).
function Reader:_record()
  local s = self:_next_line()
  self.record_line = self.line
  if not s or not find(s, '"', 1, true) then return s end
  local first = self.line
  local fields, err = split_quoted(s)
  if fields or err ~= "unterminated quoted field" then return s end
  local lines, joined, why = { { s, first } }, s
  while true do
    if #lines >= MAX_RECORD_LINES then
      why = ("still open after %d lines"):format(MAX_RECORD_LINES); break
    end
    local more = self:_next_line()
    if not more then why = "never closed"; break end
    lines[#lines + 1] = { more, self.line }
    if self:_row_like(more) then
      why = ("still open at line %d, a row of its own"):format(self.line); break
    end
    joined = joined .. "\n" .. more
    fields, err = split_quoted(joined)
    if fields then
      if #fields == self.ncols then self.record_line = first; return joined end
      why = ("closed on line %d with %d fields in the row, the header has %d"):format(self.line, #fields, self.ncols)
      break
    end
    if err ~= "unterminated quoted field" then
      why = ("closed on line %d, then %s"):format(self.line, err); break
    end
  end
  -- give back every line but the first, newest last so they come out in order
  self.pushback = self.pushback or {}
  for i = #lines, 2, -1 do self.pushback[#self.pushback + 1] = lines[i] end
  self.line, self.record_line = first, first
  return nil, ("unterminated quoted field: the quote opened on line %d is %s"):format(first, why)
end

-- The header is one physical line: a quote it leaves open is an error, not
-- a licence to read the rows below as part of it.
function Reader:_header()
  local s
  repeat s = self:_line() until s == nil or s:match("%S")
  if not s then return errors.fail("input", self.path .. ": empty file (a CSV header row naming device_id is required)") end
  if byte(s, 1) == 0xEF and sub(s, 1, 3) == "\239\187\191" then s = sub(s, 4) end -- UTF-8 BOM
  local names, err = split(s)
  if not names then return errors.fail("input", ("%s: bad header row (line %d): %s"):format(self.path, self.line, err)) end
  local index = {}
  for i, n in ipairs(names) do
    n = n:match("^%s*(.-)%s*$"):lower()
    if n ~= "" then
      if index[n] then return errors.fail("input", self.path .. ": column '" .. n .. "' appears twice in the header") end
      index[n] = i
    end
  end
  for _, r in ipairs(self.required) do
    if not index[r] then
      return errors.fail("input", self.path .. ": the header row has no '" .. r ..
        "' column (first line: " .. errors.cut(s, 80) .. ")")
    end
  end
  self.ncols = #names
  self.col, self.by_index = {}, {}
  for _, c in ipairs(self.columns) do
    self.col[c] = index[c]
    if index[c] then self.by_index[index[c]] = FIELD[c] or c end
  end
  return true
end

function Reader:_csv_row()
  local s, bad
  repeat s, bad = self:_record() until s == nil or s ~= ""
  local line = self.record_line
  if bad then return { line = line, error = "malformed CSV: " .. bad } end
  if not s then return nil end
  local row = { line = line }
  if not find(s, '"', 1, true) then -- fast path: fields straight into the row
    local want, n, pos = self.by_index, 0, 1
    while true do
      local c = find(s, ",", pos, true)
      n = n + 1
      local name = want[n]
      if name then
        local v = sub(s, pos, (c or 0) - 1)
        if v ~= "" then row[name] = v end
      end
      if not c then break end
      pos = c + 1
    end
    if n ~= self.ncols then
      return { line = line, error = string.format("malformed CSV: %d fields, the header has %d", n, self.ncols) }
    end
    return row
  end
  local fields, err = split(s)
  if not fields then return { line = line, error = "malformed CSV: " .. err } end
  if #fields ~= self.ncols then
    return { line = line, error = string.format("malformed CSV: %d fields, the header has %d", #fields, self.ncols) }
  end
  for name, i in pairs(self.col) do
    local v = fields[i]
    if v ~= "" then row[FIELD[name] or name] = v end
  end
  return row
end

function Reader:_json_row()
  local s
  repeat s = self:_next_line() until s == nil or s:match("%S")
  if not s then return nil end
  local line = self.line
  local v = cjson.decode(s)
  if type(v) ~= "table" or v[1] ~= nil then return { line = line, error = "malformed JSON line (not a JSON object)" } end
  local row = { line = line }
  for _, name in ipairs(self.columns) do
    local x = v[name]
    if x ~= nil and x ~= cjson.null then
      if type(x) ~= "string" then return { line = line, error = "'" .. name .. "' must be a string" } end
      if x ~= "" then row[FIELD[name] or name] = x end
    end
  end
  return row
end

--- The next row table, or nil at the end of the input.
function Reader:next()
  if self.format == "csv" then return self:_csv_row() end
  return self:_json_row()
end

function Reader:rows()
  return function() return self:next() end
end

--- Reads whatever is left (so `fingerprint` is known) and closes the file.
function Reader:close()
  if self.f then
    self.pushback = nil
    while self:_line() do end
    self.f:close()
    self.f = nil
  end
end

return M
