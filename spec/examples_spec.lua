-- examples/ run exactly as their headers say, against a started emulator:
-- provision.lua and repl.lua to completion, gateway.lua started with its sample
-- configuration, sent one signed push by the emulator, then stopped. Each runs
-- from an empty working directory, which must stay empty; where strace works,
-- no file is created outside the example's output directory or build/.
local emulator = require "support.emulator"
local files = require "support.files"
local cjson = require "cjson.safe"
local socket = require "socket"
local q = files.quote

local ROOT = files.cwd()
local STRACE = os.execute("strace -f -qq -o /dev/null true >/dev/null 2>&1")
STRACE = STRACE == true or STRACE == 0

local function entries(dir)
  local p = io.popen("ls -A " .. q(dir))
  local s = p:read("*a"); p:close()
  return s
end

-- Files the traced command created (O_CREAT opens, mkdir, bind of a unix
-- socket) at absolute paths outside the ALLOWED prefixes and /dev (relative
-- ones land in the working directory, which is checked to stay empty, or are
-- `mkdir -p` walking down its own path).
local function created_outside(trace, allowed)
  local bad = {}
  for line in io.lines(trace) do
    local path = line:match('openat%(%S+, "([^"]+)", [^)]*O_CREAT') or line:match('mkdir%("([^"]+)"')
      or line:match('bind%(%d+, {sa_family=AF_UNIX, sun_path="([^"]+)"')
    if path and path:sub(1, 1) == "/" and not path:match("^/dev/") and not line:match("= %-1 E") then
      local ok = false
      for _, a in ipairs(allowed) do if path:sub(1, #a) == a then ok = true end end
      if not ok then bad[#bad + 1] = path end
    end
  end
  return table.concat(bad, " ")
end

-- Runs `cmd` in the empty directory `cwd` (traced when strace works); the
-- working directory must stay empty and nothing may be created outside ALLOWED.
local function run_example(cwd, env, cmd, allowed)
  local trace = cwd .. ".trace"
  local prefix = STRACE and ("strace -f -qq -e trace=openat,mkdir,bind -o " .. q(trace) .. " ") or ""
  local code, out = files.sh("cd " .. q(cwd) .. " && env " .. env .. " " .. prefix .. cmd)
  assert.equal("", entries(cwd), "the example wrote into its working directory")
  if STRACE then
    local all = { ROOT .. "/build/" }
    for _, a in ipairs(allowed) do all[#all + 1] = a end
    assert.equal("", created_outside(trace, all), "files created outside the output directory")
    os.remove(trace)
  end
  return code, out
end

describe("examples/ as their headers say", function()
  local emu, tmp
  setup(function() emu = emulator.start{ seed = 5 } end)
  teardown(function() emu.stop() end)
  before_each(function()
    tmp = files.tmpdir("wxhw-examples")
    os.execute("mkdir " .. q(tmp .. "/cwd"))
  end)
  after_each(function() os.execute("rm -rf " .. q(tmp)) end)

  it("examples/provision.lua provisions into its output directory only, and finds the job complete on a re-run", function()
    local out_dir = tmp .. "/out"
    local cmd = "lua5.4 " .. q(ROOT .. "/examples/provision.lua") .. " " .. emu.base_url .. " " .. q(out_dir)
    local code, out = run_example(tmp .. "/cwd", "", cmd, { out_dir })
    assert.equal(0, code, out)
    assert.matches("plan: 120 devices in 3 batches, 0 invalid rows", out)
    assert.matches("done: 120 ok, 0 failed, 0 invalid", out)
    assert.equal("600", files.mode(out_dir .. "/state/ExampleLamp.key.pem"))
    local manifest = files.read(out_dir .. "/manifest.csv")
    assert.equal(121, select(2, manifest:gsub("\n", "")))
    code, out = run_example(tmp .. "/cwd", "", cmd, { out_dir })
    assert.equal(0, code, out)
    assert.matches("done: 120 ok", out)
    assert.equal(manifest, files.read(out_dir .. "/manifest.csv"))
  end)

  it("examples/repl.lua runs through (lua5.4 -i, end of input at the prompt)", function()
    local code, out = run_example(tmp .. "/cwd", "WXHW_EMULATOR=" .. emu.base_url,
      "lua5.4 -i " .. q(ROOT .. "/examples/repl.lua") .. " </dev/null", {})
    assert.equal(0, code, out)
    assert.matches("wxhw%.token ", out)
    assert.matches("\nSNT%S+", out)                      -- the snTicket
    assert.matches("nil\twxhw input error: sn has an illegal character", out)
    assert.matches("wxhw%.Key: EC P%-256", out)
    assert.is_nil(out:find("Error", 1, true))
  end)

  it("examples/gateway.lua with examples/gateway.conf.lua answers a signed push from the emulator", function()
    local gw_dir = tmp .. "/gw"
    local log = tmp .. "/gateway.log"
    local p = io.popen("cd " .. q(tmp .. "/cwd") .. " && (WXHW_GATEWAY_PORT=0 WXHW_GATEWAY_DIR=" .. q(gw_dir) ..
      " exec lua5.4 " .. q(ROOT .. "/examples/gateway.lua") .. " " .. q(ROOT .. "/examples/gateway.conf.lua") ..
      " >" .. q(log) .. " 2>&1) & echo $!")
    local pid = tonumber(p:read("*l")); p:close()
    local port
    local deadline = socket.gettime() + 20
    while not port and socket.gettime() < deadline do
      local f = io.open(log); local s = f and f:read("*a") or ""; if f then f:close() end
      port = s:match("WXHW_GATEWAY http=(%d+)")
      if not port then socket.sleep(0.05) end
    end
    local ok, err = pcall(function()
      assert(port, "the gateway did not start: " .. files.read(log))
      emu.control("/__emulator/callbacks", { mp_url = "http://127.0.0.1:" .. port .. "/wx/push" })
      local r = emu.control("/__emulator/callbacks/mp/push",
        { message = { MsgType = "event", Event = "example_hello", FromUserName = "oExample" } })
      assert.equal("delivered", r.outcome, cjson.encode(r))
      assert.equal(1, r.attempts)
      assert.equal("", entries(tmp .. "/cwd"))
    end)
    os.execute("kill " .. pid .. " 2>/dev/null")
    for _ = 1, 100 do
      if not io.open("/proc/" .. pid .. "/stat") then break end
      socket.sleep(0.05)
    end
    assert(ok, err)
    assert.is_nil(io.open("/proc/" .. pid .. "/stat"), "the gateway is still running")
  end)
end)
