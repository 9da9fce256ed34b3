-- `wxhw provision` as a user meets it: usage errors, --dry-run (no network),
-- the built-in emulator when no credentials are given, --json, a journal that
-- needs --resume, a changed input refused, the progress line.
local cjson = require "cjson.safe"
local progress = require "wxhw.provision.progress"

local ROOT = (function() local p = io.popen("pwd"); local d = p:read("*l"); p:close(); return d end)()

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"EXIT=$?\"")
  local out = p:read("*a"); p:close()
  return tonumber(out:match("EXIT=(%d+)%s*$")), (out:gsub("EXIT=%d+%s*$", ""))
end

local function cli(dir, args)
  -- credentials from the environment are cleared: the built-in emulator is used
  return sh("cd " .. q(dir) .. " && env -u WXHW_HOST_APPID -u WXHW_MP_APPID -u WXHW_OPENHW_MODEL_ID lua5.4 " ..
    q(ROOT .. "/bin/wxhw") .. " provision " .. args)
end

local function write(path, s) local f = assert(io.open(path, "wb")); f:write(s); f:close() end
local function read(path) local f = io.open(path, "rb"); if not f then return nil end; local s = f:read("*a"); f:close(); return s end

describe("wxhw provision (command line)", function()
  local dir
  before_each(function()
    local p = io.popen("mktemp -d /tmp/wxhw-cli-XXXXXX"); dir = p:read("*l"); p:close()
    local lines = { "device_id,sn" }
    for i = 1, 150 do lines[#lines + 1] = ("CLI%04d,CLI%04d"):format(i, i) end
    lines[#lines + 1] = "CLI0007,CLI9999"
    write(dir .. "/d.csv", table.concat(lines, "\n") .. "\n")
  end)
  after_each(function() os.execute("rm -rf " .. q(dir)) end)

  it("explains usage mistakes with exit status 2", function()
    local code, out = cli(dir, "d.csv")
    assert.equal(2, code)
    assert.matches("usage: wxhw provision", out)
    code, out = cli(dir, "d.csv --product X --frobnicate")
    assert.equal(2, code)
    assert.matches("unknown option %-%-frobnicate", out)
    code, out = cli(dir, "d.csv --product 'bad name'")
    assert.equal(2, code)
    assert.matches("product must be a name", out)
    -- WMPF adddevice needs the registered model name (addDevice doc)
    code, out = cli(dir, "d.csv --product X --dry-run")
    assert.equal(2, code)
    assert.matches("%-%-wmpf needs %-%-model%-name", out)
    write(dir .. "/c.json", '{"wmpf":{"model_name":"CfgModel"}}')
    code, out = cli(dir, "d.csv --product X --wmpf --dry-run --config c.json")
    assert.equal(0, code, out)
    code, out = sh("cd " .. q(dir) .. " && env -u WXHW_HOST_APPID -u WXHW_MP_APPID -u WXHW_OPENHW_MODEL_ID " ..
      "WXHW_WMPF_MODEL_NAME=EnvModel lua5.4 " .. q(ROOT .. "/bin/wxhw") .. " provision d.csv --product X --dry-run")
    assert.equal(0, code, out)
  end)

  it("prints the plan without touching any platform (--dry-run, --json)", function()
    local code, out = cli(dir, "d.csv --product Dry --model-name DryModel --wmpf --wecom --dry-run")
    assert.equal(0, code, out)
    assert.matches("151 rows, 0 invalid, 151 devices in 2 batches of 100", out)
    assert.matches("wecom register_sn%s+151", out)
    assert.matches("product Dry: create", out)
    code, out = cli(dir, "d.csv --product Dry --model-name DryModel --wmpf --dry-run --json")
    assert.equal(0, code, out)
    local plan = cjson.decode(out)
    assert.equal(2, plan.calls["wmpf adddevice"])
    assert.is_nil(read(dir .. "/manifest.csv"))
    assert.is_nil(read(dir .. "/.wxhw/Dry.product.json"))
  end)

  it("runs against its own emulator, needs --resume to continue a journal, refuses a changed input", function()
    local code, out = cli(dir, "d.csv --product Own --model-name OwnModel --wmpf --groups --wecom --out m.csv --json")
    assert.equal(3, code, out) -- one duplicate row
    local sum = cjson.decode(out:match("{.*}"))
    assert.equal(150, sum.ok)
    assert.equal(1, sum.invalid)
    local m = read(dir .. "/m.csv")
    assert.matches("duplicate device_id CLI0007 %(first at line 8%)", m)
    assert.truthy(read(dir .. "/.wxhw/Own.key.pem"))
    -- finished: nothing to do, same manifest
    code, out = cli(dir, "d.csv --product Own --model-name OwnModel --wmpf --groups --wecom --out m.csv")
    assert.equal(3, code)
    assert.matches("already complete", out)
    assert.equal(m, read(dir .. "/m.csv"))
    -- an unfinished journal (cut after its header) needs --resume
    local j = read(dir .. "/m.csv.journal")
    write(dir .. "/m2.csv.journal", j:match("^[^\n]*\n"))
    code, out = cli(dir, "d.csv --product Own --model-name OwnModel --wmpf --groups --wecom --out m2.csv")
    assert.equal(1, code)
    assert.matches("pass %-%-resume", out)
    -- the same journal against a changed input is refused
    write(dir .. "/d.csv", read(dir .. "/d.csv") .. "CLI0999,CLI0999\n")
    code, out = cli(dir, "d.csv --product Own --model-name OwnModel --wmpf --groups --wecom --out m2.csv --resume")
    assert.equal(1, code)
    assert.matches("belongs to another job %(fingerprint differs", out)
  end)

  it("draws a progress line with rate, ETA and failures", function()
    local buf = {}
    local out = { write = function(_, ...) for _, s in ipairs{ ... } do buf[#buf + 1] = s end end, flush = function() end }
    local p = progress.new{ total = 200, enabled = true, out = out, interval = 0 }
    p:update(50, 2)
    local line = p:line()
    assert.matches("^provision 50/200 %(25%.0%%%) %d+ dev/s ETA [%d:%-]+ failed 2$", line)
    p:finish()
    assert.matches("\n$", buf[#buf])
    assert.equal("01:05", progress.fmt_time(65))
    assert.equal("1:00:01", progress.fmt_time(3601))
    local quiet = progress.new{ total = 1, enabled = false, out = out }
    local n = #buf
    quiet:update(1); quiet:finish()
    assert.equal(n, #buf)
  end)
end)
