-- spec/run: alone (kills must land in the middle of a run)
-- Bulk provisioning end to end against the wxhw emulator: the manifest equals
-- the emulator's state, signatures verify (emulator ActivateDevice, OpenSSL
-- CLI, Python cryptography), faults mid-run, bad input, kill -9 and resume.
-- WXHW_LONG=1 adds the 100 000-device run killed at 20 random points.
local emulator = require "support.emulator"
local socket = require "socket"
local cjson = require "cjson.safe"
local provision = require "wxhw.provision"
local manifest_mod = require "wxhw.provision.manifest"
local input = require "wxhw.provision.input"

local LONG = os.getenv("WXHW_LONG") == "1"
local ROOT = (function() local p = io.popen("pwd"); local d = p:read("*l"); p:close(); return d end)()

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"EXIT=$?\"")
  local out = p:read("*a"); p:close()
  local code = tonumber(out:match("EXIT=(%d+)%s*$"))
  return code, (out:gsub("EXIT=%d+%s*$", ""))
end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function tmpdir()
  local p = io.popen("mktemp -d /tmp/wxhw-prov-XXXXXX")
  local d = p:read("*l"); p:close()
  return d
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a"); f:close(); return s
end

local function exists(path) local f = io.open(path, "rb"); if f then f:close() end; return f ~= nil end

local function write_devices(path, n, opts)
  opts = opts or {}
  local f = assert(io.open(path, "wb"))
  f:write("device_id,sn\n")
  for i = 1, n do
    local line = ("DEV%07d,SN%07d\n"):format(i, i)
    if opts.bad and opts.bad[i] then line = opts.bad[i] .. "\n" end
    f:write(line)
  end
  f:close()
end

-- Manifest rows as tables (CSV via the provisioning reader).
local function manifest_rows(path)
  local r = assert(input.open(path, { columns = manifest_mod.COLUMNS, format = "csv" }))
  local out = {}
  for row in r:rows() do assert(not row.error, row.error); out[#out + 1] = row end
  r:close()
  return out
end

local function cli(args)
  return sh("cd " .. q(ROOT) .. " && lua5.4 bin/wxhw provision " .. args)
end

local function pid_alive(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return false end
  local s = f:read("*l") or ""; f:close()
  return not s:match("^%d+ %b() Z")
end

-- Starts the CLI in the background, kills it with SIGKILL after `delay` s.
-- Returns true if it had already finished by itself.
local function run_and_kill(args, delay, log)
  local p = io.popen("cd " .. q(ROOT) .. " && (lua5.4 bin/wxhw provision " .. args .. " >>" .. q(log) ..
    " 2>&1 & echo $!)")
  local pid = p:read("*l"); p:close()
  socket.sleep(delay)
  local was_alive = pid_alive(pid)
  os.execute("kill -9 " .. pid .. " 2>/dev/null")
  for _ = 1, 200 do
    if not pid_alive(pid) then break end
    socket.sleep(0.01)
  end
  return not was_alive
end

-- Group ids renamed to their order of first appearance (ids are assigned by
-- the platform, so two runs compare on the grouping, not on the names). The
-- key version is left out: a run killed after registerpubkey reached the
-- platform but before the product state was saved registers the key again on
-- resume (no API tells whether the first call landed), so the version the
-- manifest carries can be 2 or more; kill_run checks it against the platform.
local function canonical(rows)
  local map, n, out = {}, 0, {}
  for i, r in ipairs(rows) do
    local g = r.group_id
    if g and not map[g] then n = n + 1; map[g] = "G" .. n end
    out[i] = table.concat({ r.line, r.device_id, r.sn or "", g and map[g] or "",
      r.qr_code and "qr" or "", r.status, r.errcode or "", r.error or "" }, "|")
  end
  return out
end

local function python_verify(manifest, pubpem, dir)
  local pub = dir .. "/pub.pem"
  local f = assert(io.open(pub, "wb")); f:write(pubpem); f:close()
  local script = [[
import csv, sys, base64
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
pub = serialization.load_pem_public_key(open(sys.argv[2], 'rb').read())
ok = bad = 0
for r in csv.DictReader(open(sys.argv[1])):
    if r['status'] != 'ok': continue
    try:
        pub.verify(base64.b64decode(r['signature'], validate=True), (r['product_id'] + '_' + r['device_id']).encode(), ec.ECDSA(hashes.SHA256()))
        ok += 1
    except Exception:
        bad += 1
print(ok, bad)
]]
  local sf = assert(io.open(dir .. "/verify.py", "wb")); sf:write(script); sf:close()
  local code, out = sh("python3 " .. q(dir .. "/verify.py") .. " " .. q(manifest) .. " " .. q(pub))
  assert.equal(0, code, out)
  local ok, bad = out:match("(%d+) (%d+)")
  return tonumber(ok), tonumber(bad)
end

local function openssl_verify(pubpath, message, sig_b64, dir)
  local f = assert(io.open(dir .. "/msg", "wb")); f:write(message); f:close()
  f = assert(io.open(dir .. "/sig.b64", "wb")); f:write(sig_b64, "\n"); f:close()
  local code, out = sh(("openssl dgst -sha256 -binary %s/msg > %s/dg && openssl base64 -d -A -in %s/sig.b64 -out %s/sig.der" ..
    " && openssl pkeyutl -verify -pubin -inkey %s -sigfile %s/sig.der -in %s/dg"):format(dir, dir, dir, dir, q(pubpath), dir, dir))
  return code == 0 and out:find("Signature Verified Successfully", 1, true) ~= nil
end

local function pubkey_of(keyfile, dir)
  local code, out = sh("openssl pkey -in " .. q(keyfile) .. " -pubout -out " .. q(dir .. "/pub-cli.pem"))
  assert.equal(0, code, out)
  return read(dir .. "/pub-cli.pem"), dir .. "/pub-cli.pem"
end

local function counter(emu, path)
  return emu.control("/__emulator/counters").endpoints[path] or 0
end

describe("wxhw provision against the emulator", function()
  local emu, dir
  before_each(function()
    emu = emulator.start{ root = ROOT }
    dir = tmpdir()
  end)
  after_each(function()
    if emu then emu.stop() end
    os.execute("rm -rf " .. q(dir))
  end)

  it("provisions 10 000 devices on WMPF, groups and WeCom; the emulator's state equals the manifest #lua54", function()
    local n = 10000
    write_devices(dir .. "/d.csv", n)
    local out = dir .. "/m.csv"
    local code, text = cli(("%s --product Lamp --model-name LampModel --wmpf --groups --wecom --emulator %s --state-dir %s --out %s --json"):format(
      q(dir .. "/d.csv"), emu.base_url, q(dir .. "/state"), q(out)))
    assert.equal(0, code, text)
    local sum = cjson.decode(text:match("{.*}"))
    assert.equal(n, sum.ok)
    local rows = manifest_rows(out)
    assert.equal(n, #rows)
    local pid = rows[1].product_id
    -- WMPF: exactly the manifest's devices, each sent once
    local st = emu.control("/__emulator/wmpf/devices?product_id=" .. pid)
    assert.equal(n, #st.device_ids)
    assert.same({ "LampModel" }, st.model_names) -- --model-name went with every adddevice
    local set = {}
    for _, d in ipairs(st.device_ids) do set[d] = true end
    for _, r in ipairs(rows) do
      assert.equal("ok", r.status)
      assert.equal(pid, r.product_id)
      assert.is_true(set[r.device_id], r.device_id)
    end
    assert.equal(n / 50, counter(emu, "/wxa/business/runtime/adddevice"))
    assert.equal(1, counter(emu, "/wxa/business/runtime/createproduct"))
    assert.equal(n, counter(emu, "/cgi-bin/openhw/model/register_sn"))
    -- signatures: all by Python cryptography, samples by the emulator and the OpenSSL CLI
    local pem, pubpath = pubkey_of(dir .. "/state/Lamp.key.pem", dir)
    local ok, bad = python_verify(out, pem, dir)
    assert.equal(n, ok)
    assert.equal(0, bad)
    -- every device activates on the emulator (ActivateDevice checks the
    -- signature against the registered public key), 200 requests at a time
    local t = assert(require("wxhw.transport").new{})
    local activated = 0
    for first = 1, n, 200 do
      local reqs = {}
      for i = first, math.min(first + 199, n) do
        local r = rows[i]
        reqs[#reqs + 1] = { method = "POST", url = emu.base_url .. "/__emulator/wmpf/activate",
          headers = { ["Content-Type"] = "application/json" },
          body = cjson.encode{ product_id = pid, device_id = r.device_id, key_version = tonumber(r.key_version),
            signature = r.signature, host_appid = emu.credentials.host_app.appid } }
      end
      for k, res in ipairs(t:batch(reqs, { concurrency = 4 })) do
        local v = cjson.decode(res.body or "")
        assert.equal(0, v and v.errcode, rows[first + k - 1].device_id .. ": " .. tostring(res.body))
        activated = activated + 1
      end
    end
    assert.equal(n, activated)
    for i = 1, n, 1999 do
      assert.is_true(openssl_verify(pubpath, pid .. "_" .. rows[i].device_id, rows[i].signature, dir))
    end
    assert.is_false(openssl_verify(pubpath, pid .. "_" .. rows[2].device_id, rows[1].signature, dir))
    -- groups: each group holds exactly the manifest's 50 devices
    local client = require("wxhw.client")
    local token = require("wxhw.token")
    local cr = emu.credentials
    local mgr = token.new{ source = "stable_token", appid = cr.mp.appid, secret = cr.mp.secret,
      base_url = emu.base_url, store = "memory" }
    local mp = require("wxhw.mp").new(assert(client.new{ base_urls = { mp = emu.base_url }, token_provider = mgr }))
    local by_group = {}
    for _, r in ipairs(rows) do
      by_group[r.group_id] = by_group[r.group_id] or {}
      by_group[r.group_id][r.sn] = true
    end
    local groups = 0
    for gid, members in pairs(by_group) do
      groups = groups + 1
      local info = assert(mp:group_info(gid))
      assert.equal(50, #info.device_list)
      for _, d in ipairs(info.device_list) do assert.is_true(members[d.sn]) end
    end
    assert.equal(n / 50, groups)
    -- WeCom: the QR code in the manifest is the registered device's
    local wc = require("wxhw.wecom").new{ client = assert(client.new{ base_urls = { wecom = emu.base_url } }),
      model_id = cr.openhw.model_id, model_secret = cr.openhw.model_secret,
      model_ticket = emu.control("/__emulator/openhw/model_ticket").model_ticket }
    for i = 1, n, 211 do
      local d = assert(wc:device_detail(rows[i].sn))
      assert.equal(d.qr_code, rows[i].qr_code)
    end
    -- a finished job re-run changes nothing
    local before = emu.control("/__emulator/counters").requests
    local manifest_before = read(out)
    code, text = cli(("%s --product Lamp --model-name LampModel --wmpf --groups --wecom --emulator %s --state-dir %s --out %s"):format(
      q(dir .. "/d.csv"), emu.base_url, q(dir .. "/state"), q(out)))
    assert.equal(0, code, text)
    assert.matches("already complete", text)
    assert.equal(manifest_before, read(out))
    assert.equal(before, emu.control("/__emulator/counters").requests) -- no API call at all
  end)

  it("takes the host app token from GET /cgi-bin/token through the host's shared store: a gateway's token survives", function()
    write_devices(dir .. "/d.csv", 20)
    local cr = emu.credentials
    local store_path = dir .. "/tokens.shm"
    local function cfg(extra)
      local c = { base_url = emu.base_url, host_app = { appid = cr.host_app.appid, secret = cr.host_app.secret },
                  mp = cr.mp, wmpf = { model_name = "LampModel" } }
      for k, v in pairs(extra or {}) do c.host_app[k] = v end
      local f = assert(io.open(dir .. "/c.json", "wb")); f:write(cjson.encode(c)); f:close()
    end
    -- a gateway on this host already holds the host app's token (rotating source, default store)
    local gw = assert(require("wxhw.token").new{ source = "wmpf", appid = cr.host_app.appid,
      secret = cr.host_app.secret, base_url = emu.base_url, store = "shm", store_path = store_path })
    local function run(product)
      return sh(("cd %s && WXHW_TOKEN_STORE=%s lua5.4 bin/wxhw provision %s --product %s --wmpf " ..
        "--config %s --state-dir %s --out %s --json"):format(q(ROOT), q(store_path), q(dir .. "/d.csv"), product,
        q(dir .. "/c.json"), q(dir .. "/state"), q(dir .. "/" .. product .. ".csv")))
    end
    local tok = assert(gw:token())
    cfg()
    local code, text = run("Host")
    assert.equal(0, code, text)
    local fetches = emu.control("/__emulator/counters").token_fetches
    assert.equal(1, fetches["token:" .. cr.host_app.appid]) -- the gateway's fetch only: the run shared it
    assert.is_nil(fetches["stable:" .. cr.host_app.appid])
    local pt = emu.json("POST", "/wxa/business/runtime/pushappmsg?access_token=" .. tok, { msg = "x", push_token = "none" })
    assert.equal(48012, pt.errcode) -- the gateway's token still works (not 40001)
    -- stable_token stays an option
    cfg{ token_source = "stable_token" }
    code, text = run("Host2")
    assert.equal(0, code, text)
    assert.equal(1, emu.control("/__emulator/counters").token_fetches["stable:" .. cr.host_app.appid])
  end)

  local function api_steps(o)
    local client = require("wxhw.client")
    local token = require("wxhw.token")
    local cr = emu.credentials
    local urls = { mp = emu.base_url, wmpf = emu.base_url, wecom = emu.base_url }
    local function tc(appid, secret)
      return assert(client.new{ base_urls = urls, retry = { attempts = 4, base_delay = 0.05, max_total = 20 },
        token_provider = token.new{ source = "stable_token", appid = appid, secret = secret, base_url = emu.base_url,
          store = "memory" } })
    end
    local so = { model_id = cr.mp.model_id, model_name = "LampModel" }
    if o.wmpf then so.wmpf = require("wxhw.wmpf").new(tc(cr.host_app.appid, cr.host_app.secret)) end
    if o.groups then so.mp = require("wxhw.mp").new(tc(cr.mp.appid, cr.mp.secret), { model_id = cr.mp.model_id }) end
    if o.wecom then
      so.wecom = require("wxhw.wecom").new{ client = assert(client.new{ base_urls = urls }),
        model_id = cr.openhw.model_id, model_secret = cr.openhw.model_secret,
        model_ticket = emu.control("/__emulator/openhw/model_ticket").model_ticket }
    end
    return provision.api_steps(so)
  end

  it("completes through faults (-1, 429, reset, 5xx) with nothing lost or doubled", function()
    local n = 1500
    write_devices(dir .. "/d.csv", n)
    emu.control("/__emulator/faults", { faults = {
      { path = "/wxa/business/runtime/adddevice", errcode = -1, count = 2, skip = 3 },
      { path = "/wxa/business/runtime/adddevice", http_status = 429, retry_after = 0, count = 1, skip = 5 },
      { path = "/wxa/business/runtime/adddevice", http_status = 502, count = 2, skip = 8 },
      { path = "/wxa/business/group/adddevice", reset = true, count = 1, skip = 4 },
      { path = "/wxa/business/group/adddevice", http_status = 503, count = 1, skip = 10 },
      { path = "/cgi-bin/openhw/model/register_sn", reset = true, count = 2, skip = 300 },
      { path = "/cgi-bin/openhw/model/register_sn", http_status = 500, count = 2, skip = 700 },
      { path = "/cgi-bin/openhw/model/register_sn", errcode = -1, count = 1, skip = 900 },
    } })
    local job = provision.new{ input = dir .. "/d.csv", product = "Faulty", wmpf = true, groups = true, wecom = true,
      out = dir .. "/m.csv", state_dir = dir .. "/state", step_delay = 0.01 }
    job.steps = api_steps(job)
    job.appid = emu.credentials.mp.appid
    local sum = assert(job:run())
    if sum.ok ~= n then
      for _, r in ipairs(manifest_rows(dir .. "/m.csv")) do
        if r.status ~= "ok" then error("line " .. r.line .. ": " .. tostring(r.error)) end
      end
    end
    assert.equal(n, sum.ok)
    assert.equal(0, sum.failed)
    local faults = emu.control("/__emulator/counters").faults
    local hit = 0
    for _, c in pairs(faults) do hit = hit + c end
    assert.is_true(hit >= 10, "faults hit: " .. hit)
    local rows = manifest_rows(dir .. "/m.csv")
    assert.equal(n, #rows)
    local st = emu.control("/__emulator/wmpf/devices?product_id=" .. rows[1].product_id)
    assert.equal(n, #st.device_ids)
    for _, r in ipairs(rows) do
      assert.equal("ok", r.status, r.error)
      assert.truthy(r.qr_code)
      assert.truthy(r.group_id)
    end
  end)

  it("reports bad input per row and a permanent platform error for that device only", function()
    local n = 300
    write_devices(dir .. "/d.csv", n, { bad = {
      [10] = "DEV0000005,SN9999995",         -- duplicate device_id
      [20] = "DEV0000020,SN0000003",         -- duplicate sn
      [30] = "DEV0000030,SN_030",            -- illegal WeCom sn
      [40] = "DEV0000040",                   -- malformed row
      [50] = '"DEV0000050,SN0000050',        -- unterminated quote: that row only
      [60] = "DEV 60,SN0000060",             -- illegal device id
      [70] = "DEV0000070,sn0000071",         -- WeCom SNs are case-insensitive: duplicate of row 71
    } })
    local job = provision.new{ input = dir .. "/d.csv", product = "BadIn", wmpf = true, groups = true, wecom = true,
      out = dir .. "/m.jsonl", state_dir = dir .. "/state" }
    job.steps = api_steps(job)
    -- a permanent error for one device: the emulator refuses this SN
    emu.control("/__emulator/faults", { path = "/cgi-bin/openhw/model/register_sn", errcode = 40058,
      errmsg = "invalid device_sn hint: refused by the test", count = 1, skip = 100 })
    local sum = assert(job:run())
    assert.equal(7, sum.invalid)
    assert.equal(1, sum.failed)
    local rows = {}
    for line in io.lines(dir .. "/m.jsonl") do rows[#rows + 1] = cjson.decode(line) end
    assert.equal(n, #rows)
    local by_line, failed = {}, {}
    for _, r in ipairs(rows) do
      by_line[r.line] = r
      if r.status == "failed" then failed[#failed + 1] = r end
    end
    assert.matches("duplicate device_id DEV0000005 %(first at line 6%)", by_line[11].error)
    assert.matches("duplicate sn", by_line[21].error)
    assert.matches("WeCom device_sn has an illegal character", by_line[31].error)
    assert.matches("malformed CSV", by_line[41].error)
    assert.matches("unterminated quoted field", by_line[51].error)
    assert.matches("device_id has a space", by_line[61].error)
    assert.equal("ok", by_line[71].status)
    assert.matches("duplicate sn %(WeCom compares case%-insensitively%) sn0000071", by_line[72].error)
    assert.equal(1, #failed)
    assert.equal(40058, failed[1].errcode)
    assert.matches("wecom: .*refused by the test", failed[1].error)
    -- the failed device is still registered on WMPF and grouped; nothing else is affected
    assert.truthy(failed[1].group_id)
    local ok = 0
    for _, r in ipairs(rows) do if r.status == "ok" then ok = ok + 1; assert.truthy(r.signature) end end
    assert.equal(n - 7 - 1, ok)
    -- retry the failed device alone from the manifest
    local retry = provision.new{ input = dir .. "/m.jsonl", product = "BadIn", wmpf = true, groups = true, wecom = true,
      only_failed = true, out = dir .. "/retry.csv", state_dir = dir .. "/state" }
    retry.steps = api_steps(retry)
    local s2 = assert(retry:run())
    assert.equal(1, s2.ok)
    assert.equal(0, s2.invalid)
    local rr = manifest_rows(dir .. "/retry.csv")
    assert.equal(1, #rr)
    assert.equal(failed[1].device_id, rr[1].device_id)
    assert.truthy(rr[1].qr_code)
  end)

  it("stops on an error no device can get past (permission) and resumes once it is fixed", function()
    write_devices(dir .. "/d.csv", 400)
    local job = provision.new{ input = dir .. "/d.csv", product = "Perm", wmpf = true, out = dir .. "/m.csv",
      state_dir = dir .. "/state" }
    job.steps = api_steps(job)
    emu.control("/__emulator/faults", { path = "/wxa/business/runtime/adddevice", errcode = 48001, count = 1, skip = 2 })
    local sum, err = job:run()
    assert.is_nil(sum)
    assert.equal(48001, err.errcode)
    assert.is_nil(io.open(dir .. "/m.csv", "rb")) -- no manifest claims anything yet
    local again = provision.new{ input = dir .. "/d.csv", product = "Perm", wmpf = true, out = dir .. "/m.csv",
      state_dir = dir .. "/state", resume = true }
    again.steps = api_steps(again)
    sum = assert(again:run())
    assert.equal(400, sum.ok)
    assert.equal(0, sum.failed)
    assert.equal(1, sum.resent.wmpf) -- the refused batch was in doubt
  end)

  it("runs per-device calls concurrently through the multiplexing transport", function()
    local n = 48
    write_devices(dir .. "/d.csv", n)
    emu.control("/__emulator/faults", { path = "/cgi-bin/openhw/model/register_sn", delay_ms = 100 })
    local client = require("wxhw.client")
    local cr = emu.credentials
    local function run(concurrency, label)
      local plain = assert(client.new{ base_urls = { wecom = emu.base_url } })
      local mux = require("wxhw.provision.mux").new(plain.transport)
      local wc = require("wxhw.wecom").new{ client = assert(client.new{ base_urls = { wecom = emu.base_url }, transport = mux }),
        model_id = cr.openhw.model_id, model_secret = cr.openhw.model_secret,
        model_ticket = emu.control("/__emulator/openhw/model_ticket").model_ticket }
      local job = provision.new{ input = dir .. "/d.csv", product = label, wecom = true, out = dir .. "/" .. label .. ".csv",
        state_dir = dir .. "/state", batch = 48 }
      job.steps = provision.api_steps{ wecom = wc, mux = mux, concurrency = concurrency }
      local t0 = socket.gettime()
      local sum = assert(job:run())
      assert.equal(n, sum.ok)
      return socket.gettime() - t0, mux
    end
    local slow = run(1, "Seq")
    local fast, mux = run(16, "Conc")
    assert.is_true(slow >= n * 0.1, "sequential took " .. slow)
    assert.equal(16, mux.max_in_flight)
    assert.is_true(fast < slow / 3, ("concurrent %.2f s vs sequential %.2f s"):format(fast, slow))
    local a, b = manifest_rows(dir .. "/Seq.csv"), manifest_rows(dir .. "/Conc.csv")
    for i = 1, n do
      assert.equal(a[i].device_id, b[i].device_id)
      assert.equal(a[i].qr_code, b[i].qr_code) -- register_sn is idempotent: same device, same code
    end
  end)

  local function kill_run(n, kills, label)
    write_devices(dir .. "/d.csv", n)
    local args = ("%s --product %s --model-name LampModel --wmpf --groups --wecom --emulator %s --state-dir %s --out %s --quiet"):format(
      q(dir .. "/d.csv"), label, emu.base_url, q(dir .. "/state"), q(dir .. "/m.csv"))
    -- how long an uninterrupted run takes, on a second emulator
    local ref = emulator.start{ root = ROOT }
    local t0 = socket.gettime()
    local code, text = cli(("%s --product %s --model-name LampModel --wmpf --groups --wecom --emulator %s --state-dir %s --out %s --quiet"):format(
      q(dir .. "/d.csv"), label, ref.base_url, q(dir .. "/ref-state"), q(dir .. "/ref.csv")))
    local span = socket.gettime() - t0
    ref.stop()
    assert.equal(0, code, text)
    math.randomseed(os.time())
    local log, killed, first = dir .. "/kill.log", 0, true
    while killed < kills do
      -- spread the kills so that they land across the whole run
      local finished = run_and_kill(args .. (first and "" or " --resume"), 0.05 + math.random() * span * 1.5 / kills, log)
      first = false
      if finished or exists(dir .. "/m.csv") then break end
      killed = killed + 1
    end
    code, text = cli(args .. " --resume --json")
    assert.is_true(code == 0, text .. (read(log) or ""))
    local sum = cjson.decode(text:match("{.*}"))
    local rows, ref_rows = manifest_rows(dir .. "/m.csv"), manifest_rows(dir .. "/ref.csv")
    assert.same(canonical(ref_rows), canonical(rows))
    -- every device exactly once on the platform; re-sends only for steps the journal had in doubt
    local pid = rows[1].product_id
    local st = emu.control("/__emulator/wmpf/devices?product_id=" .. pid)
    assert.equal(n, #st.device_ids)
    local resent = sum.resent or {}
    local adds = counter(emu, "/wxa/business/runtime/adddevice")
    -- a batch is sent again only when the journal had it in doubt (sent, or
    -- about to be, when the process died)
    assert.is_true(adds >= n / 50 and adds <= n / 50 + (resent.wmpf or 0),
      ("%d adddevice calls for %d batches, %d in doubt"):format(adds, n / 50, resent.wmpf or 0))
    local products = emu.control("/__emulator/wmpf/products").products
    -- one key version on every row: the product's latest registration
    local kv = rows[1].key_version
    for _, r in ipairs(rows) do assert.equal(kv, r.key_version, "line " .. r.line) end
    local registered
    for _, p in ipairs(products) do
      local id = type(p.product_id) == "number" and ("%.0f"):format(p.product_id) or tostring(p.product_id)
      if id == pid then registered = p.key_versions end
    end
    assert.equal(registered, tonumber(kv), "key versions the platform holds for " .. pid)
    local pem, pubpath = pubkey_of(dir .. "/state/" .. label .. ".key.pem", dir)
    local ok, bad = python_verify(dir .. "/m.csv", pem, dir)
    assert.equal(n, ok)
    assert.equal(0, bad)
    assert.is_true(openssl_verify(pubpath, pid .. "_" .. rows[n].device_id, rows[n].signature, dir))
    local res = emu.control("/__emulator/wmpf/activate", { product_id = pid, device_id = rows[1].device_id,
      key_version = tonumber(rows[1].key_version), signature = rows[1].signature })
    assert.equal(0, res.errcode)
    return killed, products
  end

  it("resumes after kill -9 at random points: same manifest, each device added once", function()
    local killed = kill_run(2000, 4, "Crash")
    assert.is_true(killed >= 2, "only " .. killed .. " kills landed mid-run")
  end)

  if LONG then
    it("waits out a per-minute quota (45011) and completes", function()
      write_devices(dir .. "/d.csv", 500)
      emu.control("/__emulator/faults", { path = "/wxa/business/runtime/adddevice", errcode = 45011, count = 1, skip = 2 })
      local t0 = socket.gettime()
      local code, text = cli(("%s --product Minute --emulator %s --state-dir %s --out %s --json"):format(
        q(dir .. "/d.csv"), emu.base_url, q(dir .. "/state"), q(dir .. "/m.csv")))
      assert.equal(0, code, text)
      assert.equal(500, cjson.decode(text:match("{.*}")).ok)
      assert.equal(1, emu.control("/__emulator/counters").faults["/wxa/business/runtime/adddevice"])
      assert.is_true(socket.gettime() - t0 < 75)
    end)

    it("resumes after kill -9 at 20 random points in a 100 000-device run", function()
      local killed = kill_run(100000, 20, "Crash100k")
      assert.is_true(killed >= 15, "only " .. killed .. " kills landed mid-run")
    end)
  end
end)
