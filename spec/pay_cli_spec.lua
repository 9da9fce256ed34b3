-- `wxhw devices list` end to end: it starts the built-in emulator itself.
local cjson = require "cjson"

local function run(args)
  local errfile = os.tmpname()
  local p = io.popen("bin/wxhw devices " .. args .. " 2>" .. errfile .. "; echo \"rc=$?\"")
  local out = p:read("*a")
  p:close()
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  out = out:gsub("rc=%d+%s*$", "")
  local lines = {}
  for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
  local f = io.open(errfile)
  local err = f and f:read("*a") or ""
  if f then f:close() end
  os.remove(errfile)
  return rc, lines, err
end

describe("wxhw devices list", function()
  it("streams devices as text with codes and decoded names", function()
    local rc, lines = run("list --limit 5 --emulator-devices 300")
    assert.equal(0, rc)
    assert.equal(5, #lines)
    for i, l in ipairs(lines) do
      local sn, cat, cls, scene, status = l:match("^(%S+)\t(%d+:%S+)\t(%d+:%S+)\t(%d:%S+)\t(%u+)\t")
      assert.truthy(sn, l)
      assert.equal(string.format("EMU%08d", i), sn:sub(1, 11))
      assert.is_nil(cat:find("?", 1, true))
      assert.is_nil(cls:find("?", 1, true))
      assert.truthy(scene)
      assert.truthy(status == "ACTIVATED" or status == "INACTIVATED")
    end
  end)

  it("prints JSON lines with every field, and all of the fleet without --limit", function()
    local rc, lines = run("list --json --emulator-devices 250 --page-size 100")
    assert.equal(0, rc)
    assert.equal(250, #lines)
    local d = cjson.decode(lines[250])
    assert.equal("EMU00000250", d.device_sn:sub(1, 11))
    assert.equal(d.device_category, d.category_name)
    assert.equal(d.device_class, d.class_name)
    assert.is_string(d.device_category_code)
  end)

  it("resumes from a checkpoint without losing or repeating a device", function()
    local cp = os.tmpname()
    os.remove(cp)
    local rc, first, err1 = run("list --json --limit 150 --page-size 40 --emulator-devices 400 --checkpoint " .. cp)
    assert.equal(0, rc, err1)
    assert.equal(150, #first)
    local rc2, rest, err2 = run("list --json --page-size 40 --emulator-devices 400 --checkpoint " .. cp)
    assert.equal(0, rc2, err2)
    assert.equal(250, #rest)
    assert.equal("EMU00000151", cjson.decode(rest[1]).device_sn:sub(1, 11))
    assert.equal("EMU00000400", cjson.decode(rest[250]).device_sn:sub(1, 11))
    os.remove(cp)
  end)

  it("refuses bad options with usage", function()
    for _, a in ipairs({ "list --page-size 101", "list --limit 0", "list --offset -1", "show", "list extra" }) do
      local rc, _, err = run(a)
      assert.equal(2, rc, a)
      assert.matches("usage: wxhw devices", err)
    end
    local rc, _, err = run("list --mchid 1900000001 --serial-no AB --private-key /nonexistent")
    assert.equal(1, rc)
    assert.matches("private%-key", err)
  end)
end)
