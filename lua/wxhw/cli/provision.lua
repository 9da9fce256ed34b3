--- wxhw provision FILE --product NAME [--wmpf] [--wecom] [--groups] ...
-- The main job: provision a factory device list and write the manifest.
local cjson = require "cjson.safe"
local json_id = require("wxhw.json").id -- integers from JSON print as 9, not 9.0 (Lua 5.4)

local M = {}

M.usage = [[
usage: wxhw provision DEVICES.csv|.jsonl --product NAME [--wmpf] [--groups] [--wecom]
         [--out manifest.csv|.jsonl] [--resume | --force] [--dry-run] [--json] [--only-failed]
         [--config FILE] [--emulator URL] [--state-dir DIR] [--key KEY.pem]
         [--product-id N --key-version N] [--appid WXAPPID] [--model-name NAME] [--batch N]
         [--host-token token|stable_token] [--concurrency N] [--no-progress] [--quiet]
Targets: --wmpf (default when none is given): product, key pair, registerpubkey,
  adddevice, bindwxaapp, one device signature per device; needs --model-name (the
  model registered on the WeChat terminal cooperation platform; or the config's
  wmpf.model_name, or WXHW_WMPF_MODEL_NAME); the host app's token comes from
  GET /cgi-bin/token through the host's shared token store (--host-token
  stable_token, or the config's host_app.token_source, for stable_token);
  --groups: Mini Program device groups of 50; --wecom: WeCom register_sn and QR
  code per device.
Credentials: --config FILE (JSON) or the environment (WXHW_MP_APPID, WXHW_MP_SECRET,
  WXHW_MODEL_ID, WXHW_HOST_APPID, WXHW_HOST_SECRET, WXHW_OPENHW_MODEL_ID,
  WXHW_OPENHW_MODEL_SECRET, WXHW_OPENHW_MODEL_TICKET, WXHW_BASE_URL). With none,
  a built-in emulator is started (state kept in the state dir).
--json: standard output is exactly one JSON document, the plan (--dry-run) or the
  summary (exit 0 or 3); nothing on other exits; notices go to standard error.
A job is its --out: --resume continues it after a crash or an error; --force starts
  it over although its journal or complete manifest exists (devices an earlier run
  registered are kept, not failed). Exit 4: another run of the job is still running.
Exit: 0 every device ok, 3 finished with failed or invalid rows, 1 error (re-run
  with --resume), 2 usage, 130 interrupted by Ctrl-C (re-run with --resume).]]

--- What bin/wxhw prints after Ctrl-C: every finished step is in the journal.
function M.on_interrupt()
  return "every finished step is in the journal: re-run the same command with --resume to continue"
end

local cli_args = require "wxhw.cli.args"
local fileio = require "wxhw.fileio"
local proc = fileio.proc

local FLAGS = { wmpf = true, groups = true, wecom = true, resume = true, ["dry-run"] = true, json = true,
  ["only-failed"] = true, ["no-progress"] = true, quiet = true, help = true, force = true }
local VALUES = { product = true, out = true, config = true, emulator = true, ["state-dir"] = true, key = true,
  ["product-id"] = true, ["key-version"] = true, batch = true, journal = true, appid = true, format = true,
  concurrency = true, ["model-name"] = true, ["host-token"] = true }

local read_file = fileio.read_file

-- Credentials: config file, then environment; nil when none were given.
local function credentials(o)
  if o.config then
    local s = read_file(o.config)
    if not s then return nil, "cannot read the config file " .. o.config end
    local c = cjson.decode(s)
    if type(c) ~= "table" then return nil, o.config .. " is not a JSON object" end
    return c
  end
  local e = os.getenv
  if not (e("WXHW_HOST_APPID") or e("WXHW_MP_APPID") or e("WXHW_OPENHW_MODEL_ID")) then return nil end
  return {
    base_url = e("WXHW_BASE_URL"),
    mp = { appid = e("WXHW_MP_APPID"), secret = e("WXHW_MP_SECRET"), model_id = e("WXHW_MODEL_ID") },
    host_app = { appid = e("WXHW_HOST_APPID"), secret = e("WXHW_HOST_SECRET") },
    openhw = { model_id = e("WXHW_OPENHW_MODEL_ID"), model_secret = e("WXHW_OPENHW_MODEL_SECRET"),
               model_ticket = e("WXHW_OPENHW_MODEL_TICKET") },
  }
end

-- The WMPF model name adddevice requires: option, config, environment.
local function model_name(o, creds)
  local v = o["model-name"]
  if v == nil and o.config then v = type(creds.wmpf) == "table" and creds.wmpf.model_name or nil
  elseif v == nil then v = os.getenv("WXHW_WMPF_MODEL_NAME") end
  if type(v) == "string" and v ~= "" then return v end
end

-- The built-in emulator of a state dir serves one run at a time: held for
-- the whole run (the kernel drops the flock when we exit, kill -9 included).
-- Without it two runs at once each started an emulator on one state file
-- and log, both read the first one's URL, and when its run ended and
-- stopped it the other run failed every device after minutes of retries.
-- (Kept in M: a file that is collected is closed, and its lock dropped.)

-- Waits up to `seconds` for a process to be gone.
local function wait_gone(pid, seconds)
  local clock = require "wxhw.clock"
  local until_ = clock.monotonic() + seconds
  while proc.alive(pid) and clock.monotonic() < until_ do clock.sleep(0.02) end
end

-- Starts `wxhw emulator` as a child that exits with us; returns its base URL
-- (nil, message, "locked" while another run uses this state dir's emulator).
local function start_emulator(state_dir)
  local ok, derr = fileio.mkdir_p(state_dir)
  if not ok then return nil, "cannot create the state dir: " .. tostring(derr.message) end
  local abs, aerr = fileio.absolute(state_dir)
  if not abs then return nil, tostring(aerr) end
  state_dir = abs
  local lf, lerr = io.open(state_dir .. "/emulator.lock", "a+b")
  local locked
  if lf then locked, lerr = fileio.lock(lf) end
  if not locked then
    if lf then lf:close() end
    if locked == false then
      return nil, ("another run is using the built-in emulator of %s: wait for it to finish, or give this run " ..
        "its own --state-dir"):format(state_dir), "locked"
    end
    return nil, "cannot lock " .. state_dir .. "/emulator.lock: " .. tostring(lerr)
  end
  M.emulator_lock = lf
  local log = state_dir .. "/emulator.log"
  local pidfile = state_dir .. "/emulator.pid"
  local clock = require "wxhw.clock"
  local old = read_file(pidfile)
  old = old and tonumber(old:match("%d+"))
  -- a previous run's emulator saves its state when it notices we are gone
  if old then wait_gone(old, 5) end
  os.remove(log)
  -- the same wxhw (checkout, make install or rock) runs the emulator; in the
  -- background (a Ctrl-C is ours: it exits when it sees we are gone)
  local pid, serr = proc.spawn(cli_args.self_argv(false, "emulator", "--port", "0", "--quiet", "--state",
    state_dir .. "/emulator-state.json", "--parent-pid", proc.pid()),
    { stdin = "null", stdout = log, stderr = "stdout", background = true })
  if not pid then return nil, "the built-in emulator did not start: " .. tostring(serr) end
  local pf = io.open(pidfile, "w")
  if pf then pf:write(tostring(pid), "\n"); pf:close() end
  local deadline = clock.monotonic() + 20
  while clock.monotonic() < deadline do
    local url = (read_file(log) or ""):match("WXHW_EMULATOR (%S+)")
    if url then return url, pid end
    clock.sleep(0.02)
  end
  proc.kill(pid)
  return nil, "the built-in emulator did not start: " .. (read_file(log) or "")
end

local function http_get_json(client, base, path)
  local res, err = client.transport:request{ method = "GET", url = base .. path }
  if not res then return nil, err end
  return cjson.decode(res.body)
end

-- Builds the step executor for the targets from credentials.
local function build_steps(o, creds, base_url)
  local client = require "wxhw.client"
  local token = require "wxhw.token"
  local urls = base_url and { mp = base_url, wmpf = base_url, wecom = base_url } or nil
  local plain = assert(client.new{ base_urls = urls })
  local mux = require("wxhw.provision.mux").new(plain.transport)
  local base = assert(client.new{ base_urls = urls, transport = mux, retry = { attempts = 6, max_total = 90 } })
  -- store nil: the host's default store (shm, shared with a gateway on this
  -- host); "memory" for tokens no other process can use
  local function with_token(appid, secret, what, source, store)
    if not appid or not secret then return nil, what .. " credentials (appid and secret) are missing" end
    local mgr, err = token.new{ source = source, appid = appid, secret = secret, base_url = base_url,
      store = store, client = base }
    if not mgr then return nil, what .. " token store: " .. tostring(err) end
    return assert(client.new{ base_urls = urls, transport = base.transport, token_provider = mgr,
      retry = { attempts = 6, max_total = 90 } })
  end
  local so = { names = creds.names, model_id = creds.mp and creds.mp.model_id, model_name = o.model_name, mux = mux,
    concurrency = tonumber(o.concurrency) or 8 }
  if o.wmpf then
    -- The host (mobile) app's token comes from GET /cgi-bin/token, as the
    -- official WMPF tooling gets it (stable_token is an option). Each fetch
    -- rotates it, so it lives in the host's shared store: this run and a
    -- gateway on the same host use one token and never void each other's.
    local ha = creds.host_app or {}
    local source = o.host_token or ha.token_source or "token"
    if source ~= "token" and source ~= "stable_token" then
      return nil, "the host app token source must be token or stable_token (got " .. tostring(source) .. ")"
    end
    local c, err = with_token(ha.appid, ha.secret, "host app (WMPF)", source,
      creds.emulator and "memory" or nil)
    if not c then return nil, err end
    so.wmpf = require("wxhw.wmpf").new(c)
  end
  if o.groups then
    local c, err = with_token(creds.mp and creds.mp.appid, creds.mp and creds.mp.secret, "Mini Program",
      "stable_token", "memory")
    if not c then return nil, err end
    if not so.model_id then return nil, "device groups need the Mini Program model_id" end
    so.mp = require("wxhw.mp").new(c, { model_id = so.model_id })
  end
  if o.wecom then
    local oh = creds.openhw or {}
    if not oh.model_id or not oh.model_secret then return nil, "WeCom needs openhw model_id and model_secret" end
    local ticket = oh.model_ticket
    if not ticket and creds.emulator then
      local t = http_get_json(base, base_url, "/__emulator/openhw/model_ticket")
      ticket = t and t.model_ticket
    end
    if not ticket then return nil, "WeCom needs the latest model_ticket (pushed to your callback URL)" end
    so.wecom = require("wxhw.wecom").new{ client = base, model_id = oh.model_id, model_secret = oh.model_secret,
      model_ticket = ticket }
  end
  return require("wxhw.provision.steps").new(so)
end

local function print_plan(plan, json)
  if json then print(cjson.encode(plan)); return end
  print(("plan for %s (%s): %d rows, %d invalid, %d devices in %d batches of %d"):format(plan.input, plan.format,
    plan.rows, plan.invalid, plan.devices, plan.batches, plan.batch))
  print(("product %s: %s"):format(plan.product, plan.product_id and ("reuse product_id " .. plan.product_id ..
    (plan.key_version and (", key_version " .. plan.key_version) or "")) or "create"))
  local names = {}
  for k in pairs(plan.calls) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do print(("  %-24s %d"):format(k, plan.calls[k])) end
  for _, e in ipairs(plan.examples) do print(("  line %d: %s"):format(e.line, e.error)) end
  if plan.duplicate_candidates > 0 then
    print(("  %d possible duplicates are checked exactly while provisioning"):format(plan.duplicate_candidates))
  end
  print("manifest: " .. plan.manifest .. "  journal: " .. plan.journal)
end

local function print_summary(s, json)
  if json then print(cjson.encode(s)); return end
  if s.already_complete then print("already complete: nothing to do") end
  local resent = 0
  for _, n in pairs(s.resent or {}) do resent = resent + n end
  print(("provisioned %d devices: %d ok, %d failed, %d invalid rows; %d batches%s"):format(s.devices or 0, s.ok or 0,
    s.failed or 0, s.invalid or 0, s.batches or 0, resent > 0 and
    (", " .. json_id(resent) .. " in-doubt steps re-checked after a crash") or ""))
  if s.product_id then print(("product %s: product_id %s key_version %s"):format(s.product, json_id(s.product_id),
    json_id(s.key_version))) end
  if s.elapsed then print(("%.1f s, %.0f devices/s"):format(s.elapsed, (s.rows or 0) / math.max(s.elapsed, 1e-6))) end
  print("manifest: " .. tostring(s.manifest))
end

function M.run(args)
  local o, pos = cli_args.parse(args, { flags = FLAGS, values = VALUES })
  local perr = pos
  if o and #pos > 1 then o, perr = nil, "one device list at a time (got " .. #pos .. ")" end
  if not o then io.stderr:write("wxhw provision: ", perr, "\n", M.usage, "\n"); return 2 end
  o.file = pos[1]
  if o.help then print(M.usage); return 0 end
  if not o.file or not o.product then io.stderr:write(M.usage, "\n"); return 2 end
  if o.force and o.resume then
    io.stderr:write("wxhw provision: --force starts the job over, --resume continues it: not both\n"); return 2
  end
  local provision = require "wxhw.provision"
  local state_dir = o["state-dir"] or ".wxhw"
  local creds, cerr = credentials(o)
  if cerr then io.stderr:write("wxhw provision: ", cerr, "\n"); return 2 end
  local job_opts = { input = o.file, product = o.product, wmpf = o.wmpf, groups = o.groups, wecom = o.wecom,
    out = o.out, journal = o.journal, state_dir = state_dir, resume = o.resume, force = o.force, only_failed = o["only-failed"],
    batch = tonumber(o.batch), product_id = o["product-id"], key_version = tonumber(o["key-version"]),
    format = o.format, progress = not o["no-progress"] and not o.quiet and not o.json and fileio.isatty(2) }
  if o.key then
    job_opts.key = read_file(o.key)
    if not job_opts.key then io.stderr:write("wxhw provision: cannot read ", o.key, "\n"); return 2 end
  end
  local ok, job = pcall(provision.new, job_opts)
  if not ok then io.stderr:write("wxhw provision: ", tostring(job):gsub("^.-provision%.new: ", ""), "\n"); return 2 end
  job.model_name = model_name(o, creds)
  job.host_token = o["host-token"]
  if job.wmpf and not job.model_name then
    io.stderr:write("wxhw provision: --wmpf needs --model-name NAME (the model registered on the WeChat terminal ",
      "cooperation platform; adddevice requires it)\n")
    return 2
  end
  if o["dry-run"] then
    local plan, err = job:plan()
    if not plan then io.stderr:write("wxhw provision: ", tostring(err), "\n"); return 1 end
    print_plan(plan, o.json)
    return 0
  end
  -- the job's lock first: a second run of it must not start anything
  local locked, lerr = job:lock()
  if not locked then
    io.stderr:write("wxhw provision: ", tostring(lerr), "\n")
    return lerr.reason == "locked" and 4 or 1
  end
  local base_url = o.emulator or (creds and creds.base_url)
  local emu_pid
  if not creds then
    if not o.emulator then
      local url, err, why = start_emulator(state_dir)
      if not url then io.stderr:write("wxhw provision: ", err, "\n"); return why == "locked" and 4 or 1 end
      base_url, emu_pid = url, err
      if not o.quiet and not o.json then io.stderr:write("wxhw provision: no credentials given, using the built-in emulator at ", url, "\n") end
    end
    local base = assert(require("wxhw.client").new{})
    local c, err = http_get_json(base, base_url, "/__emulator/credentials")
    if not c then io.stderr:write("wxhw provision: emulator credentials: ", tostring(err), "\n"); return 1 end
    creds = c
    creds.emulator = true
  end
  if o.wmpf or not (o.groups or o.wecom) then job.appid = o.appid or (creds.mp and creds.mp.appid) end
  -- the product record and the journal belong to this back end
  job.backend = ("%s appid %s"):format(emu_pid and "built-in emulator" or base_url or
    require("wxhw.client").BASE_URLS.wmpf, tostring(creds.host_app and creds.host_app.appid))
  job.concurrency = o.concurrency
  local steps, serr = build_steps(job, creds, base_url)
  if not steps then io.stderr:write("wxhw provision: ", serr, "\n"); return 2 end
  job.steps = steps
  local summary, err = job:run()
  if emu_pid then -- our own emulator: stop it so it saves its state now
    local b = require("wxhw.client").new{}
    b.transport:request{ method = "POST", url = base_url .. "/__emulator/shutdown", body = "" }
    wait_gone(emu_pid, 5)
  end
  if not summary then
    io.stderr:write("wxhw provision: ", tostring(err), "\n")
    return 1
  end
  summary.calls = steps.calls
  print_summary(summary, o.json)
  return ((summary.failed or 0) + (summary.invalid or 0)) > 0 and 3 or 0
end

return M
