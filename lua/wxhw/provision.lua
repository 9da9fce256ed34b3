--- Bulk provisioning: a factory list of devices in, every platform record and
-- every credential the factory flashes out. See docs/provision.md.
--
--   local job = wxhw.provision.new{ input = "devices.csv", product = "Lamp",
--     wmpf = true, groups = true, wecom = true, out = "manifest.csv",
--     steps = provision.api_steps{ wmpf = w, mp = m, wecom = wc, appid = "wx..." } }
--   local plan = job:plan()          -- reads the input once: counts, bad rows, calls
--   local summary, err = job:run()   -- resumable: run again after a crash
--
-- Two streamed passes over the input: the first validates every row and
-- finds duplicate candidates with a Bloom filter (wxhw.core.seen), the second
-- provisions batches of devices in input order. Every completed step is in
-- the journal before the manifest row that depends on it is written, so a run
-- killed anywhere resumes where it stopped; a finished job re-run changes nothing.
local cjson = require "cjson.safe"
local errors = require "wxhw.errors"
local crypto = require "wxhw.crypto"
local clock = require "wxhw.clock"
local core = require "wxhw.core"
local input = require "wxhw.provision.input"
local journal = require "wxhw.provision.journal"
local manifest = require "wxhw.provision.manifest"
local progress = require "wxhw.provision.progress"
local mp = require "wxhw.mp"
local wmpf = require "wxhw.wmpf"
local wecom = require "wxhw.wecom"

local M = {}
local Job = {}
Job.__index = Job

M.VERSION = 1
M.api_steps = function(o) return require("wxhw.provision.steps").new(o) end

local function product_ok(name)
  return type(name) == "string" and name:match("^[%w][%w%._%-]*$") and #name <= 64
end

--- o: input (path), product (name), wmpf, groups, wecom (booleans; none =
-- wmpf), out (manifest path; .csv or .jsonl), journal (default out ..
-- ".journal"), state_dir (product records and keys; default ".wxhw"), resume,
-- batch (devices per batch; default 100, 50 with groups), key (PEM of the
-- P-256 key to use), product_id / key_version (reuse a product), appid (Mini
-- Program to bind), model_id (for groups), steps (step executor), progress,
-- only_failed (input is a manifest: take rows whose status is failed),
-- backend (where the product lives, e.g. "<base URL> appid <host appid>": a
-- product record or journal from another back end is refused), force (start
-- over although a journal or a complete manifest exists; devices already
-- registered are reconciled, not failed).
function M.new(o)
  if type(o) ~= "table" then error("provision.new: options table expected", 2) end
  if type(o.input) ~= "string" then error("provision.new: input (path) required", 2) end
  if not product_ok(o.product) then
    error("provision.new: product must be a name of [A-Za-z0-9._-] (at most 64)", 2)
  end
  local self = setmetatable({}, Job)
  for k, v in pairs(o) do self[k] = v end
  if not (self.wmpf or self.groups or self.wecom) then self.wmpf = true end
  self.out = self.out or "manifest.csv"
  self.journal_path = o.journal or (self.out .. ".journal")
  self.state_dir = o.state_dir or ".wxhw"
  local limit = self.groups and (o.group_size or mp.GROUP_LIMIT) or nil
  self.batch = o.batch or (limit or 100)
  self.step_attempts = o.step_attempts or 6
  self.step_delay = o.step_delay or 0.2
  self.commit_interval = o.commit_interval or 0.2
  if limit and self.batch > limit then error("provision.new: batch must not exceed the group size " .. limit, 2) end
  if self.batch < 1 or self.batch > 10000 then error("provision.new: batch must be 1-10000", 2) end
  return self
end

------------------------------------------------------------------ row checks

--- The reason a row cannot be provisioned, or nil.
function Job:row_error(row)
  if row.error then return row.error end
  local id = row.device_id
  local msg = wmpf.device_id_error(id)
  if msg then return msg end
  local sn = row.sn or id
  if self.groups then
    local m = mp.sn_error(sn)
    if m then return "Mini Program " .. m end
  end
  if self.wecom then
    local m = wecom.sn_error(sn)
    if m then return "WeCom " .. m end
  end
end

-- Keys that must be unique across the input (up to three, no table: this
-- runs twice per row).
function Job:keys(row)
  local id = row.device_id
  local sn = row.sn or id
  local k2 = self.groups and sn ~= id and ("m\0" .. sn) or nil
  local k3 = self.wecom and ("w\0" .. sn:lower()) or nil
  return "d\0" .. id, k2, k3
end

local KEY_LABEL = { d = "device_id", m = "sn", w = "sn (WeCom compares case-insensitively)" }

function Job:_open_input()
  local cols = { "device_id", "sn" }
  if self.only_failed then
    cols[#cols + 1] = "status"; cols[#cols + 1] = "group_id"; cols[#cols + 1] = "error"
  end
  return input.open(self.input, { columns = cols, format = self.format })
end

local function skip_row(self, row)
  if not self.only_failed or row.error then return false end
  if row.status ~= nil and row.status ~= "failed" then return true end
  -- retrying a failed device: keep a group it already joined
  if row.group_id and not tostring(row.error_text or ""):find("group:", 1, true) then row.keep_group = row.group_id end
  return false
end

------------------------------------------------------------------ pass 1

--- Reads the whole input once: counts, per-row errors (the first few kept),
-- duplicate candidates. Memory: the Bloom filter plus the candidates.
function Job:scan()
  if self.scanned then return self.scanned end
  local r, err = self:_open_input()
  if not r then return nil, err end
  local st = io.open(self.input, "rb")
  local size = st and st:seek("end") or 0
  if st then st:close() end
  -- ~10 bits per key (a row is ~20+ bytes): about 0.5% of keys become
  -- candidates, checked exactly in pass 2.
  local nkeys = 1 + (self.groups and 1 or 0) + (self.wecom and 1 or 0)
  local bits = 2 ^ 20
  while bits < size / 2 * nkeys and bits < 2 ^ 31 do bits = bits * 2 end
  local seen = core.seen.new(bits, 4)
  local suspects, nsus = {}, 0
  local rows, invalid, examples = 0, 0, {}
  for row in r:rows() do
    if not skip_row(self, row) then
      rows = rows + 1
      local e = self:row_error(row)
      if e then
        invalid = invalid + 1
        if #examples < 20 then examples[#examples + 1] = { line = row.line, error = e } end
      else
        local k1, k2, k3 = self:keys(row)
        if seen:add(k1) and not suspects[k1] then suspects[k1] = true; nsus = nsus + 1 end
        if k2 and seen:add(k2) and not suspects[k2] then suspects[k2] = true; nsus = nsus + 1 end
        if k3 and seen:add(k3) and not suspects[k3] then suspects[k3] = true; nsus = nsus + 1 end
      end
    end
  end
  r:close()
  self.scanned = { rows = rows, invalid = invalid, examples = examples, suspects = suspects,
    candidates = nsus, fingerprint = r.fingerprint, format = r.format }
  return self.scanned
end

------------------------------------------------------------------ plan

local function ceil(a, b) return math.floor((a + b - 1) / b) end

--- What a run would do, without touching any platform.
function Job:plan()
  local s, err = self:scan()
  if not s then return nil, err end
  local state = self:_product_state()
  local valid = s.rows - s.invalid -- duplicates are found exactly in pass 2
  local batches = ceil(valid, self.batch)
  local calls = {}
  if self.wmpf then
    local none = valid == 0 -- nothing to provision: nothing is created
    calls["wmpf createproduct"] = (none or self.product_id or state.product_id) and 0 or 1
    calls["wmpf registerpubkey"] = (none or self.key_version or state.key_version) and 0 or 1
    calls["wmpf bindwxaapp"] = not none and self.appid and not state.bound and 1 or 0
    calls["wmpf adddevice"] = batches
    calls["device signatures"] = valid
  end
  if self.groups then
    calls["mp group createid"] = batches
    calls["mp group adddevice"] = batches
  end
  if self.wecom then calls["wecom register_sn"] = valid end
  return { input = self.input, format = s.format, rows = s.rows, invalid = s.invalid,
    duplicate_candidates = s.candidates, devices = valid, batch = self.batch, batches = batches,
    targets = { wmpf = self.wmpf or nil, groups = self.groups or nil, wecom = self.wecom or nil },
    product = self.product, product_id = self.product_id or state.product_id,
    key_version = self.key_version or state.key_version, calls = calls, examples = s.examples,
    manifest = self.out, journal = self.journal_path }
end

------------------------------------------------------------------ product state

local function read_file(p)
  local f = io.open(p, "rb")
  if not f then return nil end
  local s = f:read("*a"); f:close()
  return s
end

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() end
  return f ~= nil
end

-- Writes a file atomically (tmp, fsync, rename); mode 0600 when private.
local function write_file(path, data, private)
  local tmp = path .. ".tmp"
  if private then os.execute("umask 077; : > '" .. tmp:gsub("'", "'\\''") .. "'") end
  local f, err = io.open(tmp, "wb")
  if not f then return errors.fail("io", "cannot write " .. tmp .. ": " .. tostring(err)) end
  f:write(data)
  local ok, serr = core.fileio.fsync(f)
  f:close()
  if not ok then return nil, serr end
  local rok, rerr = os.rename(tmp, path)
  if not rok then return errors.fail("io", "cannot rename " .. tmp .. ": " .. tostring(rerr)) end
  core.fileio.fsync_dir(path:match("^(.*)/[^/]*$") or ".")
  return true
end
M._write_file = write_file

function Job:_state_path(ext) return self.state_dir .. "/" .. self.product .. ext end

function Job:_product_state()
  local s = read_file(self:_state_path(".product.json"))
  local st = s and cjson.decode(s) or {}
  if type(st.key_version) == "number" then st.key_version = math.floor(st.key_version) end
  return st
end

function Job:_save_product(state)
  os.execute("mkdir -p '" .. self.state_dir:gsub("'", "'\\''") .. "'")
  return write_file(self:_state_path(".product.json"), cjson.encode(state))
end

-- Product create-or-reuse, key pair generated-or-given, registerpubkey,
-- bindwxaapp. Each completed step is saved before the next starts.
-- The product record belongs to one back end: another one's is refused
-- (its product_id would fail every call there with 47001).
function Job:_backend_error(state)
  if not (self.wmpf and self.backend) then return nil end
  local path = self:_state_path(".product.json")
  if state.backend and state.backend ~= self.backend then
    return errors.new("state", ("the product record %s belongs to another back end (%s); this run uses %s: " ..
      "pass --state-dir DIR to keep this back end's products apart"):format(path, state.backend, self.backend),
      { reason = "backend" })
  end
  if not state.backend and state.product_id then
    return errors.new("state", ("the product record %s does not say which back end product %s is on " ..
      "(written by an older wxhw): if it is %s, add \"backend\": %q to it; otherwise remove it"):format(
      path, tostring(state.product_id), self.backend, self.backend), { reason = "backend" })
  end
end

-- Another job on this state dir (another device list, another manifest) may
-- be setting up the same product right now: the record is read and the
-- product, key and binding made under an exclusive lock on <product>.lock,
-- so one run creates them and the others reuse them. Without it each run
-- created its own product, the record and the key file kept the last
-- writer's (or a rename of the shared .tmp failed), and the other product
-- was orphaned with its devices and its private key lost.
M.PRODUCT_LOCK_WAIT = 300

function Job:_ensure_product()
  os.execute("mkdir -p '" .. self.state_dir:gsub("'", "'\\''") .. "'")
  local path = self:_state_path(".lock")
  local f, oerr = io.open(path, "a+b")
  if not f then return errors.fail("io", "cannot open " .. path .. ": " .. tostring(oerr)) end
  local deadline = clock.monotonic() + M.PRODUCT_LOCK_WAIT
  while true do
    local ok, lerr = core.fileio.lock(f)
    if ok then break end
    if ok == nil or clock.monotonic() > deadline then
      f:close()
      return nil, lerr or errors.new("state", ("another run has been setting up product %s for %d s (it holds %s)")
        :format(self.product, M.PRODUCT_LOCK_WAIT, path), { reason = "locked" })
    end
    clock.sleep(0.05)
  end
  local state, err = self:_ensure_product_locked()
  f:close() -- releases the lock
  return state, err
end

function Job:_ensure_product_locked()
  local state = self:_product_state()
  local berr = self:_backend_error(state)
  if berr then return nil, berr end
  state.backend = self.backend
  state.name = self.product
  if self.product_id then state.product_id = wmpf.product_id_string(self.product_id) end
  if self.key_version then state.key_version = self.key_version end
  local pem = self.key
  if not pem then
    pem = read_file(self:_state_path(".key.pem"))
    if not pem then
      if state.key_version then
        return errors.fail("input", "product " .. self.product .. " has key_version " .. state.key_version ..
          " but its private key is not in " .. self.state_dir .. "; pass --key")
      end
      os.execute("mkdir -p '" .. self.state_dir:gsub("'", "'\\''") .. "'")
      pem = crypto.generate_ec_key():private_pem()
      local ok, err = write_file(self:_state_path(".key.pem"), pem, true)
      if not ok then return nil, err end
    end
  end
  local key, kerr = crypto.private_key(pem)
  if not key then return nil, kerr end
  if key:type() ~= "ec" then return errors.fail("input", "the WMPF key must be EC P-256") end
  self.signing_key = key
  local steps = self.steps
  if not state.product_id then
    local pid, err = steps:create_product(self.product)
    if not pid then return nil, err end
    state.product_id = pid
    local ok, serr = self:_save_product(state)
    if not ok then return nil, serr end
  end
  if not state.key_version then
    local kv, err = steps:register_pubkey(state.product_id, key:public_pem())
    if not kv then return nil, err end
    state.key_version = kv
    local ok, serr = self:_save_product(state)
    if not ok then return nil, serr end
  end
  if self.appid and state.bound ~= self.appid then
    local ok, err = steps:bind_wxa_app(state.product_id, self.appid)
    if not ok then return nil, err end
    state.bound = self.appid
    local sok, serr = self:_save_product(state)
    if not sok then return nil, serr end
  end
  self.product_state = state
  return state
end

------------------------------------------------------------------ journal

function Job:_header()
  return { t = "H", v = M.VERSION, fingerprint = self.scanned.fingerprint, product = self.product,
    wmpf = self.wmpf and true or false, groups = self.groups and true or false,
    wecom = self.wecom and true or false, batch = self.batch, only_failed = self.only_failed and true or false,
    backend = self.backend, force = self.force and true or nil }
end

local HEADER_KEYS = { "v", "fingerprint", "product", "wmpf", "groups", "wecom", "batch", "only_failed" }

local function fresh_journal_state()
  return { done = {}, intent = {}, mbatch = 0, moffset = 0, header = nil, finished = nil, resent = {} }
end

-- Loads the journal keeping only what is not yet in the manifest; opening
-- it takes the job's lock (once: `lock` may have done it already).
function Job:_load_journal()
  if self.journal then return self.journal, self.journal_state end
  local st = fresh_journal_state()
  local j, err = journal.open(self.journal_path, function(rec)
    local t = rec.t
    if t == "H" then st.header = st.header or rec
    elseif t == "I" then
      st.intent[rec.b] = st.intent[rec.b] or {}
      st.intent[rec.b][rec.s] = true
    elseif t == "D" then
      st.done[rec.b] = st.done[rec.b] or {}
      st.done[rec.b][rec.s] = rec
      if st.intent[rec.b] then st.intent[rec.b][rec.s] = nil end
    elseif t == "M" then
      for b = st.mbatch + 1, rec.b do st.done[b] = nil; st.intent[b] = nil end
      st.mbatch, st.moffset, st.mrows = rec.b, rec.o, rec.r
      st.ok, st.failed, st.invalid = rec.ok, rec.failed, rec.invalid
    elseif t == "E" then st.finished = rec
    elseif t == "R" then st.resent[rec.s] = (st.resent[rec.s] or 0) + (rec.n or 0)
    end
  end)
  if not j then return nil, err end
  self.journal, self.journal_state = j, st
  return j, st
end

--- Takes the job's lock before anything else is started (the CLI calls it
-- before its emulator): nil, err (err.reason = "locked") while another run
-- of the same job is alive. `run` takes it itself otherwise.
function Job:lock()
  local j, err = self:_load_journal()
  if not j then return nil, err end
  return true
end

------------------------------------------------------------------ pass 2

-- Errors that no device can get past (credentials, permissions, quotas, the
-- disk): the job stops and can be resumed, instead of failing every device.
local FATAL_CLASS = { permission = true, daily_quota = true, token_invalid = true }
local FATAL_CODE = { [50093] = true, [40013] = true, [40125] = true, [41001] = true, [45009] = true }
local function fatal(err)
  return err.kind == "io" or err.kind == "token" or err.kind == "quota" or FATAL_CLASS[err.class] or
    (err.errcode and FATAL_CODE[err.errcode]) or false
end
M.fatal = fatal

-- Lockstep over the manifest a --force run replaces (one row per input row,
-- in order): the group an earlier run put the device in. The first row that
-- disagrees ends it (the input changed since).
function Job:_old_group(row)
  local old = self.old_manifest
  if not old then return end
  local o = old:next()
  if o and not o.error and o.device_id == row.device_id then
    if o.group_id and o.status ~= "invalid" then row.old_group = o.group_id end
  else
    old:close(); self.old_manifest = nil
  end
end

-- Devices an earlier run already put in a group (--force): getinfo on that
-- group, and the devices it holds stay there. Returns { [sn] = group_id }.
function Job:_reconcile_groups(devs)
  local by_group, kept = {}, {}
  for _, d in ipairs(devs) do
    if d.old_group then
      local sns = by_group[d.old_group] or {}
      by_group[d.old_group] = sns
      sns[#sns + 1] = d.sn or d.device_id
    end
  end
  for gid, sns in pairs(by_group) do
    local members, err = self.steps:group_members(gid)
    if members then
      for _, sn in ipairs(sns) do if members[sn] then kept[sn] = gid end end
    elseif fatal(err) then
      return nil, err
    end -- a group that is gone: its devices join a new one
  end
  return kept
end

-- Runs the steps of one batch that the journal has not recorded. `b` is the
-- batch: { n =, rows = { all rows }, devices = { valid rows } }.
function Job:_run_batch(b, st)
  local j, steps = self.journal, self.steps
  local done = st.done[b.n] or {}
  st.done[b.n] = done
  local doubt = st.intent[b.n] or {}
  local devs = b.devices
  if #devs == 0 then return true end
  local function begin(s)
    if doubt[s] then
      self.resent[s] = (self.resent[s] or 0) + 1
      j:append{ t = "R", b = b.n, s = s, n = 1 }
    end
    -- kill -9 cannot lose an appended record; power loss can lose an intent,
    -- and every step is safe to repeat without one (it only skips a check)
    return j:append{ t = "I", b = b.n, s = s }
  end
  local function finish(s, rec)
    rec.t, rec.b, rec.s = "D", b.n, s
    local ok, err = j:append(rec)
    if not ok then return nil, err end
    done[s] = rec
    return true
  end
  -- A failure that may not be final (connection reset, 5xx on a POST the
  -- client would not repeat blindly) is retried here, in doubt: the step
  -- checks the platform first where it can.
  local function try(s, fn)
    -- what register_sn answers for a registered SN is not documented: check first
    local in_doubt = doubt[s] or (self.reconcile and s == "wecom")
    local res, err
    for attempt = 1, self.step_attempts do
      res, err = fn(in_doubt)
      if res or fatal(err) or not err.retryable then return res, err end
      in_doubt = true
      self.retried = self.retried + 1
      if attempt < self.step_attempts then clock.sleep(math.min(5, self.step_delay * 2 ^ (attempt - 1))) end
    end
    return res, err
  end
  if self.wmpf and not done.wmpf then
    local ids = {}
    for i, d in ipairs(devs) do ids[i] = d.device_id end
    local ok, err = begin("wmpf")
    if not ok then return nil, err end
    local res, aerr = try("wmpf", function(d) return steps:add_devices(self.product_state.product_id, ids, d) end)
    if res then ok, err = finish("wmpf", { ok = true })
    elseif fatal(aerr) then return nil, aerr
    else ok, err = finish("wmpf", { ok = false, c = aerr.errcode, m = aerr.message }) end
    if not ok then return nil, err end
  end
  if self.groups and self.reconcile and not done.recon then
    local kept, kerr = self:_reconcile_groups(devs)
    if not kept then return nil, kerr end
    local ok, err = finish("recon", { ok = true, k = kept })
    if not ok then return nil, err end
  end
  -- devices that keep a group (--only-failed, --force) join no new one
  local kept = done.recon and done.recon.k or {}
  local gdevs = {}
  for _, d in ipairs(devs) do
    if not d.keep_group and not kept[d.sn or d.device_id] then gdevs[#gdevs + 1] = d end
  end
  if self.groups and #gdevs == 0 then
    done.gcreate, done.group = done.gcreate or { ok = true }, done.group or { ok = true }
  end
  if self.groups and not done.gcreate then
    local ok, err = begin("gcreate")
    if not ok then return nil, err end
    local name = ("%s-%d"):format(self.product:sub(1, 20), b.n)
    local gid, gerr = try("gcreate", function(d) return steps:group_create(name, d) end)
    if gid then ok, err = finish("gcreate", { ok = true, g = gid })
    elseif fatal(gerr) then return nil, gerr
    else ok, err = finish("gcreate", { ok = false, c = gerr.errcode, m = gerr.message }) end
    if not ok then return nil, err end
  end
  if self.groups and not done.group then
    local gc = done.gcreate
    if not gc.ok then
      local ok, err = finish("group", { ok = false, c = gc.c, m = gc.m })
      if not ok then return nil, err end
    else
      local ok, err = begin("group")
      if not ok then return nil, err end
      local sns = {}
      for i, d in ipairs(gdevs) do sns[i] = d.sn or d.device_id end
      local res, gerr = try("group", function(d) return steps:group_add(gc.g, sns, d) end)
      if res then ok, err = finish("group", { ok = true, f = next(res.failed) and res.failed or nil })
      elseif fatal(gerr) then return nil, gerr
      else ok, err = finish("group", { ok = false, c = gerr.errcode, m = gerr.message }) end
      if not ok then return nil, err end
    end
  end
  if self.wecom and not done.wecom then
    local ok, err = begin("wecom")
    if not ok then return nil, err end
    local qr, failed = {}, {}
    local sns = {}
    for i, d in ipairs(devs) do sns[i] = d.sn or d.device_id end
    local results
    if steps.register_many then -- concurrent first pass; failures go through try() one by one
      results = steps:register_many(sns, doubt.wecom or self.reconcile)
    end
    for i, sn in ipairs(sns) do
      local code, werr
      local r = results and results[i]
      if r and r[1] then code = r[1]
      elseif r and r[2] and not r[2].retryable then werr = r[2]
      else
        code, werr = try("wecom", function(d) return steps:register_sn(sn, d or (r ~= nil)) end)
      end
      if code then qr[sn] = code
      elseif fatal(werr) then return nil, werr
      else failed[sn] = { c = werr.errcode, m = werr.message } end
    end
    ok, err = finish("wecom", { ok = true, q = qr, f = next(failed) and failed or nil })
    if not ok then return nil, err end
  end
  return true
end

-- Manifest rows of a finished batch, in input order.
function Job:_write_batch(b, st, counts)
  local done = st.done[b.n] or {}
  local ps = self.product_state
  local out = {} -- one table reused for every row (this loop runs per device)
  local errs, code
  local function fail(step, c, m)
    errs = errs or {}
    errs[#errs + 1] = step .. ": " .. tostring(m)
    code = code or c
  end
  for _, row in ipairs(b.rows) do
    out.line, out.device_id, out.sn = row.line, row.device_id, row.sn or row.device_id
    out.product_id, out.key_version, out.signature, out.qr_code = nil, nil, nil, nil
    out.group_id, out.status, out.errcode, out.error = nil, nil, nil, nil
    if row.bad then
      out.status, out.error = "invalid", row.bad
      counts.invalid = counts.invalid + 1
    else
      errs, code = nil, nil
      local sn = out.sn
      if self.wmpf then
        out.product_id, out.key_version = ps.product_id, ps.key_version
        local w = done.wmpf
        if w and not w.ok then fail("wmpf", w.c, w.m) end
      end
      local kept = self.groups and (row.keep_group or (done.recon and done.recon.k[sn]))
      if kept then
        out.group_id = kept
      elseif self.groups then
        local gc, g = done.gcreate, done.group
        if gc and gc.ok then out.group_id = gc.g end
        if g and not g.ok then fail("group", g.c, g.m)
        elseif g and g.f and g.f[sn] then fail("group", g.f[sn].c, g.f[sn].m) end
      end
      if self.wecom then
        local w = done.wecom
        if w and w.q and w.q[sn] then out.qr_code = w.q[sn]
        elseif w and w.f and w.f[sn] then fail("wecom", w.f[sn].c, w.f[sn].m) end
      end
      if not errs then
        out.status = "ok"
        if self.wmpf then out.signature = wmpf.device_signature(self.signing_key, ps.product_id, row.device_id) end
        counts.ok = counts.ok + 1
      else
        out.status, out.errcode, out.error = "failed", code, table.concat(errs, "; ")
        counts.failed = counts.failed + 1
      end
    end
    self.mf:write(out)
  end
end

--- Provisions every device. Returns the summary, or nil, err (then run again
-- with resume = true to continue).
function Job:run()
  local t0 = clock.monotonic()
  local s, err = self:scan()
  if not s then return nil, err end
  local j, st = self:_load_journal()
  if not j then return nil, st end
  local function fail(e)
    j:close(); self.journal = nil
    if self.mf then self.mf:close() end
    if self.old_manifest then self.old_manifest:close() end
    return nil, e
  end
  local berr = self:_backend_error(self:_product_state()) -- before the journal says anything
  if berr then return fail(berr) end
  local header = self:_header()
  if st.header and self.force then -- start over: the journal's records go, its lock stays
    local ok, rerr = j:reset()
    if not ok then return fail(rerr) end
    st = fresh_journal_state()
    self.journal_state = st
  end
  if st.header then
    for _, k in ipairs(HEADER_KEYS) do
      if st.header[k] ~= header[k] then
        return fail(errors.new("state", ("the journal %s belongs to another job (%s differs: the input file or options changed); " ..
          "pass --force to start this job over, or use another --out"):format(self.journal_path, k)))
      end
    end
    if st.header.backend and header.backend and st.header.backend ~= header.backend then
      return fail(errors.new("state", ("the journal %s was written against %s; this run uses %s"):format(
        self.journal_path, st.header.backend, header.backend), { reason = "backend" }))
    end
    if st.finished then
      j:close(); self.journal = nil
      local sum = st.finished.summary or {}
      sum.already_complete = true
      return sum
    end
    if not self.resume then
      return fail(errors.new("state", ("a journal for this job exists (%s): pass --resume to continue it, " ..
        "or --force to start over"):format(self.journal_path)))
    end
  else
    if not self.force and exists(self.out) then
      return fail(errors.new("state", ("the manifest %s exists and is complete: pass --force to provision this " ..
        "list again over it (devices already registered are reconciled), or use another --out"):format(self.out),
        { reason = "manifest_exists" }))
    end
    j:append(header)
    j:sync()
  end
  -- a job started over with --force (also when resumed): what an earlier run
  -- registered is taken as it is on the platform, not failed
  self.reconcile = (st.header or header).force and true or false
  self.resent, self.retried = st.resent, 0
  if self.wmpf and s.rows > s.invalid then -- nothing to provision: no product, no key
    local ps, perr = self:_ensure_product()
    if not ps then return fail(perr) end
  else
    self.product_state = {}
  end
  if self.reconcile and self.groups and exists(self.out) then
    -- the manifest being replaced says which group each device joined
    self.old_manifest = input.open(self.out, { columns = { "device_id", "group_id", "status" },
      format = manifest.format_of(self.out) })
  end
  local mf, merr = manifest.open(self.out, st.mbatch > 0 and st.moffset or 0)
  if not mf then return fail(merr) end
  self.mf = mf
  local counts = { ok = st.ok or 0, failed = st.failed or 0, invalid = st.invalid or 0 }
  local prog = progress.new{ total = s.rows, enabled = self.progress }
  local r, rerr = self:_open_input()
  if not r then return fail(rerr) end
  local first, nb, batch, done_rows = {}, 0, nil, st.mrows or 0
  local suspects = s.suspects
  local any_suspect = next(suspects) ~= nil
  local function new_batch() nb = nb + 1; batch = { n = nb, rows = {}, devices = {} } end
  -- Group commit: the manifest is fsync'd, then an M record vouches for it
  -- and the journal is fsync'd, at most every commit_interval seconds. A
  -- batch finished but not yet vouched for is rebuilt from its D records.
  local last_commit = clock.monotonic()
  local function commit()
    local size, serr = mf:sync()
    if not size then return nil, serr end
    j:append{ t = "M", b = nb, o = size, r = done_rows, ok = counts.ok, failed = counts.failed, invalid = counts.invalid }
    last_commit = clock.monotonic()
    return j:sync()
  end
  local function flush(final)
    if batch.n > st.mbatch then
      local ok, e = self:_run_batch(batch, st)
      if not ok then return nil, e end
      self:_write_batch(batch, st, counts)
      done_rows = done_rows + #batch.rows
      st.done[batch.n], st.intent[batch.n] = nil, nil
      if final or clock.monotonic() - last_commit >= self.commit_interval then
        ok, e = commit()
        if not ok then return nil, e end
      end
      prog:update(done_rows, counts.failed)
    elseif final then
      return commit()
    end
    return true
  end
  new_batch()
  for row in r:rows() do
    if not skip_row(self, row) then
      self:_old_group(row)
      local bad = self:row_error(row)
      if not bad and any_suspect then
        local k1, k2, k3 = self:keys(row)
        local s1, s2, s3 = suspects[k1], k2 and suspects[k2], k3 and suspects[k3]
        if s1 or s2 or s3 then
          for _, k in ipairs{ s1 and k1 or false, s2 and k2 or false, s3 and k3 or false } do
            if k and first[k] then
              bad = ("duplicate %s %s (first at line %d)"):format(KEY_LABEL[k:sub(1, 1)], k:sub(3), first[k])
              break
            end
          end
          if not bad then
            if s1 then first[k1] = row.line end
            if s2 then first[k2] = row.line end
            if s3 then first[k3] = row.line end
          end
        end
      end
      if not bad then
        if #batch.devices == self.batch then
          local ok, e = flush()
          if not ok then r:close(); return fail(e) end
          new_batch()
        end
        batch.devices[#batch.devices + 1] = row
      end
      row.bad = bad
      batch.rows[#batch.rows + 1] = row
    end
  end
  r:close()
  if self.old_manifest then self.old_manifest:close(); self.old_manifest = nil end
  if r.fingerprint ~= s.fingerprint then
    return fail(errors.new("state", "the input file changed while it was being provisioned"))
  end
  local ok, e = flush(true)
  if not ok then return fail(e) end
  prog:finish()
  local ps = self.product_state
  local summary = { rows = s.rows, devices = counts.ok + counts.failed, ok = counts.ok, failed = counts.failed,
    invalid = counts.invalid, batches = nb, resent = self.resent, retried = self.retried, manifest = self.out,
    product = self.product, product_id = ps.product_id, key_version = ps.key_version,
    elapsed = clock.monotonic() - t0 }
  local fok, ferr = mf:finish()
  if not fok then return fail(ferr) end
  self.mf = nil
  j:append{ t = "E", summary = summary }
  j:close(); self.journal = nil
  return summary
end

return M
