-- Streamed device lists, per-row errors, duplicate detection, the journal's
-- torn-tail handling and the plan (no network).
local input = require "wxhw.provision.input"
local journal = require "wxhw.provision.journal"
local provision = require "wxhw.provision"
local core = require "wxhw.core"

local function tmpdir()
  local p = io.popen("mktemp -d /tmp/wxhw-prov-XXXXXX")
  local d = p:read("*l"); p:close()
  return d
end

local function write(path, s)
  local f = assert(io.open(path, "wb")); f:write(s); f:close()
end

local function read(path)
  local f = assert(io.open(path, "rb")); local s = f:read("*a"); f:close(); return s
end

local function rows_of(path, opts)
  local r = assert(input.open(path, opts))
  local out = {}
  for row in r:rows() do out[#out + 1] = row end
  r:close()
  return out, r
end

describe("provision input", function()
  local dir
  setup(function() dir = tmpdir() end)
  teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("reads CSV with quotes, embedded commas and newlines, CRLF and a BOM", function()
    local p = dir .. "/a.csv"
    write(p, '\239\187\191Device_ID,sn,note\r\nD1,S1,plain\r\n"D2","S2","a, b"\r\nD3,S3,"two\nlines"\r\n\r\nD4,,"say ""hi"""\r\n')
    local rows = rows_of(p)
    assert.equal(4, #rows)
    assert.same({ line = 2, device_id = "D1", sn = "S1" }, rows[1])
    assert.same({ line = 3, device_id = "D2", sn = "S2" }, rows[2])
    assert.same({ line = 4, device_id = "D3", sn = "S3" }, rows[3])
    assert.equal("D4", rows[4].device_id)
    assert.is_nil(rows[4].sn)
    assert.equal(7, rows[4].line)
  end)

  it("gives a clear per-row error for malformed rows and carries on", function()
    local p = dir .. "/b.csv"
    write(p, 'device_id,sn\nD1,S1\nD2\n"D3,S3\nD4,S4\n')
    local rows = rows_of(p)
    assert.equal("D1", rows[1].device_id)
    assert.matches("malformed CSV: 1 fields, the header has 2", rows[2].error)
    assert.equal(3, rows[2].line)
    -- the unterminated quote is one row's error; the next row is read on its own
    assert.matches("unterminated quoted field", rows[3].error)
    assert.equal(4, rows[3].line)
    assert.same({ line = 5, device_id = "D4", sn = "S4" }, rows[4])
    assert.equal(4, #rows)
    write(p, 'device_id,sn\nD1,S"1\nD2,"S2"x\n')
    rows = rows_of(p)
    assert.matches("quote inside an unquoted field 2", rows[1].error)
    assert.matches("text after a closing quote", rows[2].error)
  end)

  it("rejects a file without a device_id header or an empty one", function()
    local p = dir .. "/c.csv"
    write(p, "id,sn\n1,2\n")
    local r, err = input.open(p)
    assert.is_nil(r)
    assert.matches("no 'device_id' column", err.message)
    write(p, "")
    r, err = input.open(p)
    assert.is_nil(r)
    assert.matches("empty file", err.message)
    r, err = input.open(dir .. "/missing.csv")
    assert.is_nil(r)
    assert.equal("input", err.kind)
  end)

  it("reads JSON lines with per-line errors", function()
    local p = dir .. "/d.jsonl"
    write(p, '{"device_id":"D1","sn":"S1","x":1}\n\nnot json\n{"device_id":12}\n[1]\n{"device_id":"D5"}')
    local rows, r = rows_of(p)
    assert.equal("jsonl", r.format)
    assert.same({ line = 1, device_id = "D1", sn = "S1" }, rows[1])
    assert.matches("malformed JSON line", rows[2].error)
    assert.equal(3, rows[2].line)
    assert.matches("'device_id' must be a string", rows[3].error)
    assert.matches("malformed JSON line", rows[4].error)
    assert.same({ line = 6, device_id = "D5" }, rows[5])
  end)

  it("fingerprints the bytes and streams large inputs in flat memory", function()
    local p = dir .. "/big.csv"
    local f = assert(io.open(p, "wb"))
    f:write("device_id,sn\n")
    for i = 1, 200000 do f:write(("DEV%07d,SN%07d\n"):format(i, i)) end
    f:close()
    collectgarbage("collect")
    local before = collectgarbage("count")
    local r = assert(input.open(p))
    local n, peak = 0, 0
    for row in r:rows() do
      n = n + 1
      assert(row.device_id)
      -- what the reader keeps alive (garbage depends on the collector's phase)
      if n % 20000 == 0 then collectgarbage("collect"); peak = math.max(peak, collectgarbage("count")) end
    end
    r:close()
    assert.equal(200000, n)
    assert.is_true(peak - before < 4 * 1024, "memory grew by " .. (peak - before) .. " KB")
    local fp = r.fingerprint
    assert.matches("^%d+:%x+$", fp)
    local _, r2 = rows_of(p)
    assert.equal(fp, r2.fingerprint)
    -- one byte changed: another fingerprint
    local s = read(p)
    write(p, s:sub(1, 1000) .. "X" .. s:sub(1002))
    local _, r3 = rows_of(p)
    assert.are_not.equal(fp, r3.fingerprint)
  end)
end)

describe("provision Bloom filter (wxhw.core.seen) #c", function()
  it("never misses a key it has seen and rarely claims one it has not", function()
    local s = core.seen.new(2 ^ 20, 4)
    for i = 1, 20000 do assert.is_false(s:add("k" .. i) and i < 0) end
    for i = 1, 20000 do assert.is_true(s:test("k" .. i)) end
    local fp = 0
    for i = 1, 20000 do if s:test("other" .. i) then fp = fp + 1 end end
    assert.is_true(fp < 200, fp .. " false positives")
    assert.matches("wxhw.Seen %(128 KiB, k=4", tostring(s))
    assert.has_error(function() core.seen.new(0) end)
    assert.has_error(function() core.seen.new(1024, 0) end)
  end)
end)

describe("provision journal #c", function()
  local dir
  setup(function() dir = tmpdir() end)
  teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("reads back records, cuts a torn or corrupt tail, keeps appending after it", function()
    local p = dir .. "/j"
    local j = assert(journal.open(p))
    for i = 1, 5 do assert(j:append{ t = "D", b = i }) end
    assert(j:sync()); j:close()
    local whole = read(p)
    -- torn: the last line lost its end
    write(p, whole:sub(1, -4))
    j = assert(journal.open(p))
    assert.equal(4, #j.records)
    assert.is_true(j.torn)
    j:append{ t = "E" }; j:close()
    j = assert(journal.open(p))
    assert.equal(5, #j.records)
    assert.equal("E", j.records[5].t)
    assert.is_false(j.torn)
    j:close()
    -- a flipped byte in the middle: everything from there on is dropped
    local s = read(p)
    local line2 = s:find("\n") + 3
    write(p, s:sub(1, line2 - 1) .. "9" .. s:sub(line2 + 1))
    j = assert(journal.open(p))
    assert.equal(1, #j.records)
    j:close()
  end)
end)

describe("provision plan and row checks", function()
  local dir
  setup(function() dir = tmpdir() end)
  teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("checks device ids and both SN rule sets, and counts the calls", function()
    local p = dir .. "/p.csv"
    write(p, "device_id,sn\nD1,SN1\nD2,SN_2\nD3,SN 3\nD 4,SN4\nD5," .. ("x"):rep(129) .. "\nD6,\nD7,SN-7\n")
    local job = provision.new{ input = p, product = "Plan", wmpf = true, groups = true, wecom = true,
      state_dir = dir .. "/state", out = dir .. "/m.csv" }
    local plan = assert(job:plan())
    assert.equal(7, plan.rows)
    -- SN_2 and SN-7 are fine for the Mini Program but not for WeCom; D 4 has a space; SN 3 and the 129-byte sn are bad
    assert.equal(5, plan.invalid)
    assert.equal(2, plan.devices)
    local msgs = {}
    for _, e in ipairs(plan.examples) do msgs[e.line] = e.error end
    assert.matches("WeCom device_sn has an illegal character \"_\"", msgs[3])
    assert.matches("Mini Program sn has an illegal character \" \"", msgs[4])
    assert.matches("device_id has a space", msgs[5])
    assert.matches("Mini Program sn is 129 bytes", msgs[6])
    assert.equal(1, plan.calls["wmpf createproduct"])
    assert.equal(1, plan.calls["wmpf adddevice"])
    assert.equal(2, plan.calls["wecom register_sn"])
    assert.equal(50, plan.batch)
    -- WMPF alone accepts any printable SN
    local job2 = provision.new{ input = p, product = "Plan", state_dir = dir .. "/state", out = dir .. "/m.csv" }
    assert.equal(1, job2:plan().invalid)
  end)

  it("refuses bad options early", function()
    assert.has_error(function() provision.new{ input = "x", product = "bad name" } end)
    assert.has_error(function() provision.new{ input = "x", product = "P", groups = true, batch = 51 } end)
  end)
end)
