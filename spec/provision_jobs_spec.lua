-- A provisioning job is its manifest: one run at a time (a lock on the
-- journal), a complete manifest is never overwritten without --force, a
-- --force run reconciles what is already registered instead of failing it,
-- the product record belongs to one back end, and an empty list creates
-- nothing. Every run here is the real command against the emulator.
local emulator = require "support.emulator"
local files = require "support.files"
local socket = require "socket"
local cjson = require "cjson.safe"
local input = require "wxhw.provision.input"
local manifest_mod = require "wxhw.provision.manifest"

local ROOT, q, write, sh = files.cwd(), files.quote, files.write, files.sh
local function read(path) -- nil for a file not there (yet)
  local f = io.open(path, "rb")
  if f then f:close(); return files.read(path) end
end
local function alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  local s = f:read("*l") or ""; f:close()
  return not s:match("^%d+ %b() Z")
end

local CLI = "cd " .. q(ROOT) .. " && lua5.4 bin/wxhw provision "

local function devices(path, n, prefix)
  local lines = { "device_id,sn" }
  for i = 1, n do lines[#lines + 1] = ("%s%05d,%s%05d"):format(prefix, i, prefix, i) end
  write(path, table.concat(lines, "\n") .. "\n")
end

local function manifest_rows(path)
  local r = assert(input.open(path, { columns = manifest_mod.COLUMNS, format = "csv" }))
  local out = {}
  for row in r:rows() do out[#out + 1] = row end
  r:close()
  return out
end

local function counter(emu, path) return emu.control("/__emulator/counters").endpoints[path] or 0 end

describe("provision jobs", function()
  local emu, dir
  before_each(function()
    emu = emulator.start{ root = ROOT }
    dir = files.tmpdir("wxhw-jobs")
  end)
  after_each(function()
    if emu then emu.stop() end
    os.execute("rm -rf " .. q(dir))
  end)

  local function args(extra, e)
    return ("%s --product Jobs --model-name JobsModel --emulator %s --state-dir %s --out %s --quiet %s"):format(
      q(dir .. "/d.csv"), (e or emu).base_url, q(dir .. "/state"), q(dir .. "/m.csv"), extra or "")
  end

  it("runs one job once at a time: a second run is refused (exit 4), the first finishes; kill -9 frees it", function()
    devices(dir .. "/d.csv", 600, "LCK")
    emu.control("/__emulator/faults", { path = "/wxa/business/runtime/adddevice", delay_ms = 400 })
    local p = io.popen(CLI .. args("--json") .. " >" .. q(dir .. "/first.log") .. " 2>&1 & echo $!")
    local pid = p:read("*l"); p:close()
    local t0 = socket.gettime()
    while not (read(dir .. "/m.csv.journal") or ""):find("\n") and socket.gettime() - t0 < 20 do socket.sleep(0.05) end
    assert.is_true(alive(pid), read(dir .. "/first.log"))
    local code, out = sh(CLI .. args())
    assert.equal(4, code, out)
    assert.matches("another run of this job is still running %(it holds the journal .*m%.csv%.journal%)", out)
    code, out = sh(CLI .. args("--resume"))
    assert.equal(4, code, out)
    code, out = sh(CLI .. args("--force"))
    assert.equal(4, code, out)
    while alive(pid) and socket.gettime() - t0 < 60 do socket.sleep(0.1) end
    local sum = cjson.decode((read(dir .. "/first.log") or ""):match("{.*}") or "")
    assert.is_table(sum, read(dir .. "/first.log"))
    assert.equal(600, sum.ok)
    local rows = manifest_rows(dir .. "/m.csv")
    assert.equal(600, #rows)
    local st = emu.control("/__emulator/wmpf/devices?product_id=" .. rows[1].product_id)
    assert.equal(600, #st.device_ids)
    assert.equal(6, counter(emu, "/wxa/business/runtime/adddevice")) -- the refused runs sent nothing
    -- a holder killed with -9 holds nothing: --resume goes on at once
    os.remove(dir .. "/m.csv"); os.remove(dir .. "/m.csv.journal")
    devices(dir .. "/d.csv", 600, "KIL")
    p = io.popen(CLI .. args() .. " >" .. q(dir .. "/killed.log") .. " 2>&1 & echo $!")
    pid = p:read("*l"); p:close()
    t0 = socket.gettime()
    while counter(emu, "/wxa/business/runtime/adddevice") < 8 and socket.gettime() - t0 < 20 do socket.sleep(0.05) end
    os.execute("kill -9 " .. pid)
    while alive(pid) do socket.sleep(0.02) end
    emu.control("/__emulator/faults/clear", {})
    code, out = sh(CLI .. args("--resume --json"))
    assert.equal(0, code, out)
    assert.equal(600, cjson.decode(out:match("{.*}")).ok)
    rows = manifest_rows(dir .. "/m.csv")
    assert.equal(600, #rows)
    for i, r in ipairs(rows) do assert.equal(("KIL%05d"):format(i), r.device_id); assert.equal("ok", r.status) end
  end)

  it("never overwrites a complete manifest without --force; --force reconciles: all ok, no new group", function()
    devices(dir .. "/d.csv", 120, "FRC")
    local a = args("--wmpf --groups --wecom --json")
    local code, out = sh(CLI .. a)
    assert.equal(0, code, out)
    local before = read(dir .. "/m.csv")
    local first = manifest_rows(dir .. "/m.csv")
    assert.equal(3, counter(emu, "/wxa/business/group/createid"))
    -- the advice of old: remove the journal to start over
    os.remove(dir .. "/m.csv.journal")
    code, out = sh(CLI .. a)
    assert.equal(1, code, out)
    assert.matches("the manifest .*m%.csv exists and is complete: pass %-%-force", out)
    assert.equal(before, read(dir .. "/m.csv"))
    code, out = sh(CLI .. a .. " --force --resume")
    assert.equal(2, code, out)
    code, out = sh(CLI .. a .. " --force")
    assert.equal(0, code, out)
    local sum = cjson.decode(out:match("{.*}"))
    assert.equal(120, sum.ok)
    assert.equal(0, sum.failed)
    local again = manifest_rows(dir .. "/m.csv")
    assert.equal(120, #again)
    for i, r in ipairs(again) do
      assert.equal("ok", r.status, r.error)
      assert.equal(first[i].group_id, r.group_id) -- still in the group the first run made
      assert.equal(first[i].qr_code, r.qr_code)
      assert.equal(first[i].product_id, r.product_id)
    end
    assert.equal(3, counter(emu, "/wxa/business/group/createid")) -- no orphan group
    assert.equal(1, counter(emu, "/wxa/business/runtime/createproduct"))
    -- a finished job's journal is started over by --force too, and a --force
    -- run killed with -9 mid-way resumes with the same groups
    emu.control("/__emulator/faults", { path = "/wxa/business/group/getinfo", delay_ms = 300 })
    local replaced = read(dir .. "/m.csv") -- signatures are new on every run (ECDSA)
    local p = io.popen(CLI .. a .. " --force >" .. q(dir .. "/killed.log") .. " 2>&1 & echo $!")
    local pid = p:read("*l"); p:close()
    local t0 = socket.gettime()
    while counter(emu, "/wxa/business/group/getinfo") < 5 and socket.gettime() - t0 < 20 do socket.sleep(0.02) end
    os.execute("kill -9 " .. pid)
    while alive(pid) do socket.sleep(0.02) end
    emu.control("/__emulator/faults/clear", {})
    assert.equal(replaced, read(dir .. "/m.csv")) -- the manifest being replaced is intact until the end
    code, out = sh(CLI .. a .. " --resume")
    assert.equal(0, code, out .. (read(dir .. "/killed.log") or ""))
    for i, r in ipairs(manifest_rows(dir .. "/m.csv")) do
      assert.equal("ok", r.status, r.error_text)
      assert.equal(first[i].group_id, r.group_id)
    end
    assert.equal(3, counter(emu, "/wxa/business/group/createid"))
  end)

  it("keeps the product record to its back end and refuses another one", function()
    devices(dir .. "/d.csv", 10, "BKE")
    local code, out = sh(CLI .. args())
    assert.equal(0, code, out)
    local other = emulator.start{ root = ROOT }
    local ok, err = pcall(function()
      local a = args("", other):gsub("m%.csv", "m2.csv")
      code, out = sh(CLI .. a)
      assert.equal(1, code, out)
      assert.matches("the product record .*Jobs%.product%.json belongs to another back end %(" ..
        emu.base_url:gsub("%p", "%%%0") .. " appid wx%w+%); this run uses " .. other.base_url:gsub("%p", "%%%0"), out)
      assert.equal(0, counter(other, "/wxa/business/runtime/adddevice"))
      -- its own state dir: its own product
      code, out = sh(CLI .. a:gsub("/state", "/state2"))
      assert.equal(0, code, out)
      assert.equal(1, counter(other, "/wxa/business/runtime/createproduct"))
    end)
    other.stop()
    assert(ok, err)
  end)

  it("creates nothing for a list with nothing to provision", function()
    write(dir .. "/d.csv", "device_id,sn\n")
    local code, out = sh(CLI .. args("--json"))
    assert.equal(0, code, out)
    local sum = cjson.decode(out:match("{.*}"))
    assert.equal(0, sum.devices)
    assert.equal(0, #emu.control("/__emulator/wmpf/products").products)
    assert.equal(0, counter(emu, "/wxa/business/runtime/registerpubkey"))
    assert.is_nil(read(dir .. "/state/Jobs.key.pem"))
    assert.equal("line,device_id,sn,product_id,key_version,signature,qr_code,group_id,status,errcode,error\n",
      read(dir .. "/m.csv"))
    -- only invalid rows: the same
    write(dir .. "/d.csv", "device_id,sn\nbad id,SN1\n")
    code, out = sh(CLI .. args("--json"):gsub("m%.csv", "m2.csv"))
    assert.equal(3, code, out)
    assert.equal(0, #emu.control("/__emulator/wmpf/products").products)
  end)
end)
