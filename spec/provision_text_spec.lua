-- What provisioning prints and writes is text a person or a factory tool
-- reads: integers from JSON print as integers under Lua 5.4 (errcode=40125,
-- not 40125.0), and no message cuts a UTF-8 character, so the manifest is
-- valid UTF-8 whatever the platform or the input says.
local emulator = require "support.emulator"
local files = require "support.files"
local errors = require "wxhw.errors"
local manifest = require "wxhw.provision.manifest"
local json = require "wxhw.json"

local ROOT, q, write, read, sh = files.cwd(), files.quote, files.write, files.read, files.sh

-- Python's strict decoder is the judge of valid UTF-8.
local function utf8_valid(path)
  local code, out = sh("python3 -c 'import sys; open(sys.argv[1], encoding=\"utf-8\", errors=\"strict\").read()' " .. q(path))
  return code == 0, out
end

describe("provision text", function()
  local dir
  before_each(function() dir = files.tmpdir("wxhw-text") end)
  after_each(function() os.execute("rm -rf " .. q(dir)) end)

  it("prints integral numbers from JSON as integers", function()
    local code = json.decode('{"errcode":40125}').errcode -- a float under Lua 5.4
    assert.matches("%(errcode=40125, http_status=200%)$", tostring(errors.new("wx", "m", { errcode = code, http_status = 200.0 })))
    local m = assert(manifest.open(dir .. "/m.csv"))
    m:write{ line = 2, device_id = "D1", status = "failed", errcode = json.decode("[9800015]")[1], key_version = 3.0 }
    m:write{ line = 3, device_id = "D2", status = "ok", key_version = json.decode("[2]")[1] }
    assert(m:finish())
    local text = read(dir .. "/m.csv")
    assert.matches("\n2,D1,,,3,,,,failed,9800015,\n", text, 1, true)
    assert.matches("\n3,D2,,,2,,,,ok,,\n", text, 1, true)
    assert.is_nil(text:find("%d%.0"))
  end)

  it("cuts messages at a character boundary and shows a bad byte as \\xNN", function()
    local s = ("设备已存在"):rep(10) -- 3 bytes a character
    for max = 1, 40 do
      local c = errors.cut(s, max)
      local body = c:gsub("…$", "")
      assert.is_true(#body <= max and #body > max - 3, max .. ": " .. c)
      assert.equal(0, #body % 3, max .. ": " .. c)
    end
    assert.equal("short", errors.cut("short", 10))
    assert.equal("中", errors.char_at("ab中c", 4))
    assert.equal("\\xE4", errors.char_at("ab\228c", 3))
    assert.equal("\\x0A", errors.char_at("a\nb", 2))
    assert.matches('illegal character "中" at byte 3', require("wxhw.mp").sn_error("SN中1"), 1, true)
    assert.matches('illegal character "中" at 3', require("wxhw.wecom").sn_error("SN中1"), 1, true)
  end)

  it("cuts no message in the library with :sub(1, N) (errors.cut keeps characters whole)", function()
    -- the next message cut in the middle of a character would be one of these
    local allowed = { -- not messages
      ["lua/wxhw/emulator/tokens.lua"] = "a store key",
      ["lua/wxhw/provision.lua"] = "a group name from the product name, ASCII by its rule",
    }
    local _, list = files.sh("cd " .. q(ROOT) .. " && grep -rnE '(\\.\\. *[][A-Za-z_.()]*:sub\\(1, *[0-9]+\\))|(format\\(.*:sub\\(1, *[0-9]+\\))|(^[[:space:]]*[][A-Za-z_.()]*:sub\\(1, *[0-9]+\\))' lua/")
    local found = {}
    for line in list:gmatch("[^\n]+") do
      local file = line:match("^([^:]+):")
      if not allowed[file] then found[#found + 1] = line end
    end
    assert.same({}, found)
  end)

  it("writes a valid UTF-8 manifest with a long Chinese errmsg and Chinese SNs; the summary counts integers", function()
    local emu = emulator.start{ root = ROOT }
    local ok, err = pcall(function()
      local lines = { "device_id,sn" }
      for i = 1, 30 do lines[#lines + 1] = ("TXT%04d,TXT%04d"):format(i, i) end
      lines[#lines + 1] = "TXT0031,序列号中文31" -- a WeCom SN may not hold these characters
      write(dir .. "/d.csv", table.concat(lines, "\n") .. "\n")
      local long = ("设备序列号已被其他型号注册，请检查后重试。"):rep(30)
      emu.control("/__emulator/faults", { path = "/cgi-bin/openhw/model/register_sn", errcode = 40058,
        errmsg = long, count = 1, skip = 3 })
      emu.control("/__emulator/faults", { path = "/wxa/business/runtime/adddevice", errcode = 48001, count = 1 })
      local args = ("%s --product Text --model-name TextModel --wmpf --wecom --emulator %s --state-dir %s --out %s --quiet"):format(
        q(dir .. "/d.csv"), emu.base_url, q(dir .. "/state"), q(dir .. "/m.csv"))
      local cli = "cd " .. q(ROOT) .. " && lua5.4 bin/wxhw provision "
      -- stopped by a permission error, resumed: one step re-checked
      local code, out = sh(cli .. args)
      assert.equal(1, code, out)
      assert.matches("errcode=48001[,)]", out)
      code, out = sh(cli .. args .. " --resume")
      assert.equal(3, code, out)
      assert.matches("1 in%-doubt steps re%-checked", out)
      -- read back from the journal (JSON): still integers
      code, out = sh(cli .. args)
      assert.equal(3, code, out)
      assert.matches("already complete", out)
      assert.matches("1 in%-doubt steps re%-checked", out)
      assert.matches("key_version 1\n", out)
      local valid, why = utf8_valid(dir .. "/m.csv")
      assert.is_true(valid, why)
      local m = read(dir .. "/m.csv")
      assert.matches(",failed,40058,wecom: ", m, 1, true)
      assert.matches('illegal character ""序"" at 1', m, 1, true) -- CSV doubles the quotes
      assert.is_nil(m:find("%d%.0,"))
    end)
    emu.stop()
    assert(ok, err)
  end)
end)
