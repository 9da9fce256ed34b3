-- The device-list invariant: every data record of the input is in the
-- output exactly once — as a device, or as an invalid row at its own line.
-- A seeded generator writes hostile CSV (stray quotes, CRLF, a BOM, blank
-- lines, quoted fields with commas, escaped quotes and newlines); the reader
-- is checked on many files, the whole command against the emulator on a few.
local input = require "wxhw.provision.input"
local manifest_mod = require "wxhw.provision.manifest"
local emulator = require "support.emulator"
local files = require "support.files"
local cjson = require "cjson.safe"

local ROOT, q, write = files.cwd(), files.quote, files.write

-- A deterministic generator (the spec must not depend on the runtime's math.random).
local function lcg(seed)
  local x = seed
  return function(n)
    x = (x * 1103515245 + 12345) % 2147483648
    return x % n + 1
  end
end

local ORDERS = { -- the note never comes first: see docs/provision.md on quoted newlines
  { "device_id", "sn", "note" }, { "sn", "device_id", "note" },
  { "device_id", "note", "sn" }, { "sn", "note", "device_id" },
}
local WORDS = { "red", "lamp", "a b", "12 inch", "x", "" }

--- One generated file: the text and the records expected from it, in order:
-- { line =, device_id =, sn = } for a good record, { line =, bad = true } for
-- a record broken by a stray quote.
local function generate(seed, nrecords)
  local rnd = lcg(seed)
  local nl = rnd(2) == 1 and "\r\n" or "\n"
  local order = ORDERS[rnd(#ORDERS)]
  local out, expect, line = {}, {}, 1
  out[1] = (rnd(4) == 1 and "\239\187\191" or "") .. table.concat(order, ",") .. nl
  local function word() return WORDS[rnd(#WORDS)] end
  for i = 1, nrecords do
    while rnd(6) == 1 do out[#out + 1] = nl; line = line + 1 end -- blank lines
    local id, sn = ("DEV%05d-%d"):format(i, seed), ("SN%05dx%d"):format(i, seed)
    local v = { device_id = id, sn = sn, note = word() }
    local kind = rnd(10)
    local text, nlines = nil, 1
    if kind <= 2 then
      -- a stray quote: at the start of a field (never closed) or inside one
      local f = {}
      for k, c in ipairs(order) do f[k] = (v[c]:gsub('"', "")) end
      local k = rnd(3)
      if rnd(3) == 1 then f[k] = f[k]:sub(1, 1) .. '"' .. f[k]:sub(2) else f[k] = '"' .. f[k] end
      text = table.concat(f, ",")
      expect[#expect + 1] = { line = line + 1, bad = true }
    else
      local f = {}
      for k, c in ipairs(order) do
        local s = v[c]
        if c == "note" and kind >= 8 then
          -- a quoted note over several lines (continuation lines hold no comma)
          local parts = { "first, " .. word() }
          for _ = 1, rnd(3) do
            local w = word()
            parts[#parts + 1] = rnd(3) == 1 and (w .. ' said ""hi""') or w
          end
          nlines = #parts
          f[k] = '"' .. table.concat(parts, nl) .. '"'
        elseif c == "note" and kind >= 6 then
          f[k] = '"' .. s .. ', with a comma and a ""quote"""'
        elseif rnd(3) == 1 then
          f[k] = '"' .. s .. '"'
        else
          f[k] = s
        end
      end
      text = table.concat(f, ",")
      expect[#expect + 1] = { line = line + 1, device_id = id, sn = sn }
    end
    out[#out + 1] = text .. nl
    line = line + nlines
  end
  if rnd(3) == 1 then out[#out] = out[#out]:sub(1, -#nl - 1) end -- no newline at the end
  return table.concat(out), expect
end

local function check_rows(rows, expect, text)
  local where = "\n--- input:\n" .. text
  assert.equal(#expect, #rows, "record count" .. where)
  for i, e in ipairs(expect) do
    local r = rows[i]
    assert.equal(e.line, r.line, "record " .. i .. " line" .. where)
    if e.bad then
      assert.is_string(r.error, "record " .. i .. " (line " .. e.line .. ") should be invalid" .. where)
    else
      assert.is_nil(r.error, r.error)
      assert.equal(e.device_id, r.device_id, "line " .. e.line .. where)
      assert.equal(e.sn, r.sn, "line " .. e.line .. where)
    end
  end
end

describe("provision CSV: every data record comes out exactly once", function()
  local dir
  setup(function()
    dir = files.tmpdir("wxhw-csv")
  end)
  teardown(function() os.execute("rm -rf " .. q(dir)) end)

  it("holds for 1500 generated files read by the reader", function()
    local path = dir .. "/g.csv"
    local strays = 0
    for seed = 1, 1500 do
      local text, expect = generate(seed, 3 + seed % 25)
      write(path, text)
      local r = assert(input.open(path))
      local rows = {}
      for row in r:rows() do rows[#rows + 1] = row end
      r:close()
      check_rows(rows, expect, text)
      for _, e in ipairs(expect) do if e.bad then strays = strays + 1 end end
    end
    assert.is_true(strays > 3000, strays .. " stray quotes")
  end)

  it("names the line of a malformed quote and never merges the rows after it", function()
    local path = dir .. "/s.csv"
    -- the reported case: a stray quote closed by another quote a few lines on
    write(path, 'device_id,sn\nD1,S1\nD2,S2\n"D3,S3\nD4,S4\nD5,"S5"\nD6,S6\n')
    local r = assert(input.open(path))
    local rows = {}
    for row in r:rows() do rows[#rows + 1] = row end
    r:close()
    assert.equal(6, #rows)
    assert.matches("quote opened on line 4 is still open at line 5, a row of its own", rows[3].error)
    for i, id in pairs{ [4] = "D4", [5] = "D5", [6] = "D6" } do assert.equal(id, rows[i].device_id) end
    -- a quote inside a field that closes on a later line with the wrong field count
    write(path, 'device_id,sn,note\nD1,S1,"open\nclosed" here\nD2,S2,x\n')
    r = assert(input.open(path))
    rows = {}
    for row in r:rows() do rows[#rows + 1] = row end
    r:close()
    assert.equal(3, #rows)
    assert.matches("opened on line 2 is closed on line 3, then text after a closing quote", rows[1].error)
    assert.equal(3, rows[2].line)
    assert.equal("D2", rows[3].device_id)
    -- a header cannot run on into the rows
    write(path, 'device_id,"sn\nD1,S1"\n')
    local h, err = input.open(path)
    assert.is_nil(h)
    assert.matches("bad header row %(line 1%): unterminated quoted field", err.message)
  end)

  it("holds through the command against the emulator", function()
    local emu = emulator.start{ root = ROOT }
    local ok, err = pcall(function()
      for seed = 9001, 9003 do
        local text, expect = generate(seed, 40)
        local path, out = ("%s/c%d.csv"):format(dir, seed), ("%s/m%d.csv"):format(dir, seed)
        write(path, text)
        local p = io.popen(("cd %s && lua5.4 bin/wxhw provision %s --product Gen%d --model-name GenModel --emulator %s --state-dir %s --out %s --json 2>&1"):format(
          q(ROOT), q(path), seed, emu.base_url, q(dir .. "/state"), q(out)))
        local log = p:read("*a"); p:close()
        local sum = cjson.decode(log:match("{.*}") or "")
        assert.is_table(sum, log)
        local r = assert(input.open(out, { columns = manifest_mod.COLUMNS, format = "csv" }))
        local rows = {}
        for row in r:rows() do assert.is_nil(row.error); rows[#rows + 1] = row end
        r:close()
        local bad = 0
        assert.equal(#expect, #rows, log)
        for i, e in ipairs(expect) do
          assert.equal(tostring(e.line), rows[i].line)
          if e.bad then
            bad = bad + 1
            assert.equal("invalid", rows[i].status)
            assert.matches("^malformed CSV", rows[i].error_text)
          else
            assert.equal(e.device_id, rows[i].device_id)
            assert.equal("ok", rows[i].status, rows[i].error_text)
          end
        end
        assert.equal(bad, sum.invalid)
        assert.equal(#expect - bad, sum.ok)
      end
    end)
    emu.stop()
    assert(ok, err)
  end)
end)
