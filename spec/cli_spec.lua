-- spec/run: alone (Ctrl-C must land while a run is still going)
-- The wxhw command line around its commands: one version everywhere,
-- `--help` on every command (without running it), and Ctrl-C during
-- `provision` that says how to resume and exits 130 instead of a traceback.
local files = require "support.files"
local emulator = require "support.emulator"
local socket = require "socket"

local q = files.quote
-- the command line under the runtime this spec runs on (its own core build)
local LUA = rawget(_G, "jit") and "luajit" or "lua5.4"
local ROOT = (function() local p = io.popen("pwd"); local d = p:read("*l"); p:close(); return d end)()
local WXHW = LUA .. " " .. q(ROOT .. "/bin/wxhw")

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"EXIT=$?\"")
  local out = p:read("*a"); p:close()
  return tonumber(out:match("EXIT=(%d+)%s*$")), (out:gsub("EXIT=%d+%s*$", ""))
end

local function lines(path)
  local f = io.open(path); if not f then return 0 end
  local n = 0
  for _ in f:lines() do n = n + 1 end
  f:close()
  return n
end

describe("wxhw command line", function()
  it("has one version: wxhw._VERSION, wxhw --version, the C core and the rockspec", function()
    local wxhw = require "wxhw"
    assert.matches("^%d+%.%d+%.%d+$", wxhw._VERSION)
    assert.equal(wxhw._VERSION, wxhw._core.version)
    local code, out = sh(WXHW .. " --version")
    assert.equal(0, code)
    assert.equal("wxhw " .. wxhw._VERSION .. "\n", out)
    local p = io.popen("ls wxhw-*.rockspec"); local rockspecs = p:read("*a"); p:close()
    assert.equal("wxhw-" .. wxhw._VERSION .. "-1.rockspec\n", rockspecs) -- exactly one, named for the version
    local spec = files.read("wxhw-" .. wxhw._VERSION .. "-1.rockspec")
    assert.matches('\nversion = "' .. wxhw._VERSION:gsub("%.", "%%.") .. '%-1"', spec)
    assert.matches("## " .. wxhw._VERSION:gsub("%.", "%%."), files.read("CHANGELOG.md"))
  end)

  it("every command answers --help with its usage and exit 0, without running", function()
    for _, cmd in ipairs{ "demo", "emulator", "provision", "devices", "call-worker" } do
      for _, form in ipairs{ cmd .. " --help", cmd .. " -h", "help " .. cmd } do
        local code, out = sh(WXHW .. " " .. form)
        assert.equal(0, code, form .. ": " .. out)
        assert.matches("^usage: wxhw " .. cmd:gsub("%-", "%%-"), out, form)
      end
    end
    local code, out = sh(WXHW .. " demo --help")
    assert.equal(0, code)
    assert.not_matches("Authorization", out) -- the demo itself did not run
    code, out = sh(WXHW .. " --help")
    assert.equal(0, code)
    assert.matches("130 interrupted", out)
    code, out = sh(WXHW .. " demo --frobnicate")
    assert.equal(2, code)
    assert.matches("unknown option %-%-frobnicate", out)
  end)

  it("Ctrl-C during provision prints how to resume and exits 130; --resume then finishes", function()
    local dir = files.tmpdir("wxhw-cli")
    local emu = emulator.start{}
    finally(function() emu.stop(); os.execute("rm -rf " .. q(dir)) end)
    local rows = { "device_id,sn" }
    for i = 1, 200 do rows[#rows + 1] = ("INT%04d,INT%04d"):format(i, i) end
    files.write(dir .. "/d.csv", table.concat(rows, "\n") .. "\n")
    -- every answer 100 ms late: the run takes far longer than the spec waits
    emu.control("/__emulator/faults", { path = "*", delay_ms = 100 })
    local args = " provision d.csv --product Int --model-name Lamp --emulator " .. emu.base_url ..
      " --batch 10 --concurrency 1 --out m.csv --no-progress"
    -- the interpreter (its pid in ./pid) gets the SIGINT a terminal's Ctrl-C sends; no
    -- pkill or curl here: under the sanitizer run's LD_PRELOAD they hang
    os.execute("cd " .. q(dir) .. " && (env -u WXHW_HOST_APPID -u WXHW_MP_APPID -u WXHW_OPENHW_MODEL_ID sh -c " ..
      q("echo $$ >pid; exec " .. WXHW .. args) .. " >out 2>err; echo $? >rc) >/dev/null 2>&1 &")
    local deadline = socket.gettime() + 20
    while lines(dir .. "/m.csv.journal") < 5 and socket.gettime() < deadline do socket.sleep(0.05) end
    assert.is_true(lines(dir .. "/m.csv.journal") >= 5, "provision made no progress: " .. (files.read(dir .. "/err")))
    assert.is_nil(io.open(dir .. "/rc"), "provision ended before Ctrl-C")
    local sent = os.execute("kill -INT " .. files.read(dir .. "/pid"):match("%d+"))
    assert.is_true(sent == true or sent == 0)
    deadline = socket.gettime() + 10
    while not io.open(dir .. "/rc") and socket.gettime() < deadline do socket.sleep(0.05) end
    socket.sleep(0.1)
    local err = files.read(dir .. "/err")
    assert.equal("130", (files.read(dir .. "/rc"):match("%d+")), err)
    assert.matches("wxhw provision: interrupted; .*re%-run the same command with %-%-resume", err)
    assert.not_matches("traceback", err)
    -- resume without the delay: everything provisioned once
    emu.control("/__emulator/faults", nil, "DELETE")
    local code, out = sh("cd " .. q(dir) .. " && " .. WXHW .. args .. " --resume")
    assert.equal(0, code, out)
    assert.matches("provisioned 200 devices: 200 ok, 0 failed", out)
  end)

  it("Ctrl-C at a terminal (SIGINT to the whole process group) also stops the built-in emulator cleanly", function()
    local dir = files.tmpdir("wxhw-cli")
    finally(function() os.execute("rm -rf " .. q(dir)) end)
    local rows = { "device_id,sn" }
    -- enough rows that the run outlasts the spec's first look at the emulator:
    -- with posix_spawn and the shared loop, 200 rows took 0.09 s in all
    local N = 3000
    for i = 1, N do rows[#rows + 1] = ("GRP%04d,GRP%04d"):format(i, i) end
    files.write(dir .. "/d.csv", table.concat(rows, "\n") .. "\n")
    local args = " provision d.csv --product Grp --model-name Lamp --batch 10 --concurrency 1 --out m.csv --no-progress"
    -- setsid: a process group of its own, as a terminal gives a foreground job
    local p = io.popen("cd " .. q(dir) .. " && setsid sh -c " .. q("env -u WXHW_HOST_APPID -u WXHW_MP_APPID " ..
      "-u WXHW_OPENHW_MODEL_ID " .. WXHW .. args .. " >out 2>err; echo $? >rc") .. " >/dev/null 2>&1 & echo $!")
    local group = p:read("*l"); p:close()
    local deadline, url = socket.gettime() + 20, nil
    while not url and socket.gettime() < deadline do
      url = (io.open(dir .. "/.wxhw/emulator.log") and files.read(dir .. "/.wxhw/emulator.log") or ""):match("WXHW_EMULATOR (%S+)")
      socket.sleep(0.02)
    end
    assert.truthy(url, "the built-in emulator did not start")
    -- slow the built-in emulator down so the run is still going when Ctrl-C comes
    local _, status = require("socket.http").request(url .. "/__emulator/faults", '{"path":"*","delay_ms":100}')
    assert.equal(200, status)
    while lines(dir .. "/m.csv.journal") < 5 and socket.gettime() < deadline do socket.sleep(0.05) end
    assert.is_nil(io.open(dir .. "/rc"), "provision ended before Ctrl-C")
    local t_int = socket.gettime()
    local sent = os.execute("kill -INT -" .. group) -- the whole group
    assert.is_true(sent == true or sent == 0)
    deadline = socket.gettime() + 10
    while not io.open(dir .. "/rc") and socket.gettime() < deadline do socket.sleep(0.05) end
    local emu_pid = files.read(dir .. "/.wxhw/emulator.pid"):match("%d+")
    while io.open("/proc/" .. emu_pid .. "/stat") and socket.gettime() < deadline do socket.sleep(0.05) end
    local err = files.read(dir .. "/err")
    assert.equal("130", (files.read(dir .. "/rc"):match("%d+")), err)
    assert.matches("re%-run the same command with %-%-resume", err)
    assert.not_matches("traceback", err .. files.read(dir .. "/.wxhw/emulator.log"))
    assert.is_nil(io.open("/proc/" .. emu_pid .. "/stat"), "the emulator outlived Ctrl-C")
    -- it saved its state on the way out (its periodic save runs only while it serves)
    local st = io.popen("stat -c %.3Y " .. q(dir .. "/.wxhw/emulator-state.json"))
    local saved = tonumber(st:read("*l")); st:close()
    assert.is_true(saved >= t_int - 0.01, ("state saved %.3f s before Ctrl-C"):format(t_int - saved))
    local code, out = sh("cd " .. q(dir) .. " && " .. WXHW .. args .. " --resume")
    assert.equal(0, code, out)
    assert.matches(("provisioned %d devices: %d ok, 0 failed"):format(N, N), out)
  end)
end)
