-- `--json` as documented (docs/provision.md, docs/pay.md, --help): `wxhw
-- provision` prints exactly one JSON document on standard output, `wxhw devices
-- list` prints JSON Lines. Parsed by python3's `json`, an independent parser.
local files = require "support.files"
local q = files.quote

local LUA = os.getenv("WXHW_RUNTIME") == "luajit" and "luajit" or "lua5.4"
local ROOT = files.cwd()

-- Runs a shell command; returns exit status, stdout, stderr.
local function run(cmd)
  local err = files.fresh_path()
  local p = io.popen(cmd .. " 2>" .. q(err) .. "; echo \"EXIT=$?\"")
  local out = p:read("*a"); p:close()
  local e = io.open(err) and files.read(err) or ""
  os.remove(err)
  return tonumber(out:match("EXIT=(%d+)%s*$")), (out:gsub("EXIT=%d+%s*$", "")), e
end

local function wxhw(dir, args)
  -- credentials from the environment are cleared: the built-in emulator is used
  return run("cd " .. q(dir) .. " && env -u WXHW_HOST_APPID -u WXHW_MP_APPID -u WXHW_OPENHW_MODEL_ID " .. LUA .. " " ..
    q(ROOT .. "/bin/wxhw") .. " " .. args)
end

-- python3 parses TEXT: "one" = the whole text is exactly one JSON document
-- (json.loads refuses a second one as "Extra data"), "lines" = JSON Lines.
-- Returns a summary line the spec asserts on, or the parser's complaint.
local CHECK = [[
import json, sys
mode, data = sys.argv[1], sys.stdin.buffer.read().decode("utf-8")
if mode == "one":
    doc = json.loads(data)
    assert isinstance(doc, dict), "not an object"
    print("object", " ".join(sorted(doc)))
else:
    assert data.endswith("\n"), "last line not terminated"
    lines = data[:-1].split("\n") if data else []
    sns = []
    for i, line in enumerate(lines):
        doc = json.loads(line)
        assert isinstance(doc, dict), "line %d is not an object" % (i + 1)
        sns.append(doc["device_sn"])
    print("lines", len(lines), " ".join(sns))
]]

local function python(mode, text)
  local script, input = files.fresh_path(), files.fresh_path()
  files.write(script, CHECK)
  files.write(input, text)
  local code, out, err = run("python3 " .. q(script) .. " " .. mode .. " <" .. q(input))
  os.remove(script); os.remove(input)
  assert(code == 0, "python3 json refused the output: " .. err .. "\n--- output was:\n" .. text)
  return (out:gsub("\n$", ""))
end

describe("--json output (python3 json)", function()
  local dir
  before_each(function()
    dir = files.tmpdir("wxhw-json")
    local rows = { "device_id,sn" }
    for i = 1, 60 do rows[#rows + 1] = ("JS%04d,JS%04d"):format(i, i) end
    rows[#rows + 1] = "JS0003,JS9999" -- a duplicate: exit 3, still one document
    files.write(dir .. "/d.csv", table.concat(rows, "\n") .. "\n")
  end)
  after_each(function() os.execute("rm -rf " .. q(dir)) end)

  it("wxhw provision --json prints exactly one JSON document (plan, summary, already complete)", function()
    local code, out, err = wxhw(dir, "provision d.csv --product Js --model-name JsModel --dry-run --json")
    assert.equal(0, code, err)
    assert.matches("^object .*calls .*devices", python("one", out))
    code, out, err = wxhw(dir, "provision d.csv --product Js --model-name JsModel --wmpf --groups --json --out m.csv")
    assert.equal(3, code, err)
    local keys = python("one", out)
    for _, k in ipairs{ "calls", "devices", "failed", "invalid", "manifest", "ok", "product_id" } do
      assert.truthy((" " .. keys .. " "):find(" " .. k .. " ", 1, true), k .. " missing: " .. keys)
    end
    code, out, err = wxhw(dir, "provision d.csv --product Js --model-name JsModel --wmpf --groups --json --out m.csv")
    assert.equal(3, code, err)
    assert.matches("already_complete", python("one", out))
    -- an error: nothing on standard output, the message on standard error
    code, out, err = wxhw(dir, "provision missing.csv --product Js --model-name JsModel --json --out n.csv")
    assert.is_true(code ~= 0 and code ~= 3)
    assert.equal("", out)
    assert.matches("missing%.csv", err)
  end)

  it("wxhw devices list --json prints JSON Lines: one object per device, the devices the text listing shows", function()
    local code, out, err = wxhw(dir, "devices list --json --emulator-devices 130 --page-size 50")
    assert.equal(0, code, err)
    local n, sns = python("lines", out):match("^lines (%d+) (.*)$")
    assert.equal(130, tonumber(n))
    local text_code, text = wxhw(dir, "devices list --emulator-devices 130 --page-size 50")
    assert.equal(0, text_code)
    local listed = {}
    for line in text:gmatch("[^\n]+") do listed[#listed + 1] = line:match("^(%S+)\t") end
    assert.equal(table.concat(listed, " "), sns)
    code, out = wxhw(dir, "devices list --json --limit 7 --emulator-devices 130")
    assert.equal(0, code)
    assert.matches("^lines 7 ", python("lines", out))
  end)

  it("says so in --help", function()
    local _, out = wxhw(dir, "provision --help")
    assert.matches("exactly one JSON document", out)
    _, out = wxhw(dir, "devices list --help")
    assert.matches("JSON Lines", out)
  end)
end)
