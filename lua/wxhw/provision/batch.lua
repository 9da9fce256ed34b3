--- One batch of a provisioning job: the platform steps its devices need,
-- each journalled as it completes. A Job method (wxhw.provision mixes it in)
-- and the rule for which errors stop the job.
--
-- A step the journal has recorded (D) is not run again. One with an intent
-- (I) but no record was in flight when a run died: it is run again "in
-- doubt" (the step checks the platform first where it can) and counted (R).
local clock = require "wxhw.clock"

local M = {}
local Job = {}
M.methods = Job

-- Errors that no device can get past (credentials, permissions, quotas, the
-- disk): the job stops and can be resumed, instead of failing every device.
local FATAL_CLASS = { permission = true, daily_quota = true, token_invalid = true }
local FATAL_CODE = { [50093] = true, [40013] = true, [40125] = true, [41001] = true, [45009] = true }
local function fatal(err)
  return err.kind == "io" or err.kind == "token" or err.kind == "quota" or FATAL_CLASS[err.class] or
    (err.errcode and FATAL_CODE[err.errcode]) or false
end
M.fatal = fatal

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

------------------------------------------------------------------ one batch

-- What the steps of one batch share: the job, the batch, its journal state.
local Batch = {}
Batch.__index = Batch

local function sns_of(devs)
  local sns = {}
  for i, d in ipairs(devs) do sns[i] = d.sn or d.device_id end
  return sns
end

-- The intent before a step's calls (and the resend count when the last run
-- died with this step in flight). kill -9 cannot lose an appended record;
-- power loss can lose an intent, and every step is safe to repeat without
-- one (it only skips a check).
function Batch:begin(s)
  local job = self.job
  if self.doubt[s] then
    job.resent[s] = (job.resent[s] or 0) + 1
    job.journal:append{ t = "R", b = self.n, s = s, n = 1 }
  end
  return job.journal:append{ t = "I", b = self.n, s = s }
end

-- A failure that may not be final (connection reset, 5xx on a POST the
-- client would not repeat blindly) is retried here, in doubt: the step
-- checks the platform first where it can.
function Batch:try(s, fn)
  local job = self.job
  -- what register_sn answers for a registered SN is not documented: check first
  local in_doubt = self.doubt[s] or (job.reconcile and s == "wecom")
  local res, err
  for attempt = 1, job.step_attempts do
    res, err = fn(in_doubt)
    if res or fatal(err) or not err.retryable then return res, err end
    in_doubt = true
    job.retried = job.retried + 1
    if attempt < job.step_attempts then clock.sleep(math.min(5, job.step_delay * 2 ^ (attempt - 1))) end
  end
  return res, err
end

-- The devices that join this batch's new group: not those that keep a
-- group (--only-failed, --force). Read after the recon step.
function Batch:group_devices()
  if not self.gdevs then
    local kept = self.done.recon and self.done.recon.k or {}
    local gdevs = {}
    for _, d in ipairs(self.devs) do
      if not d.keep_group and not kept[d.sn or d.device_id] then gdevs[#gdevs + 1] = d end
    end
    self.gdevs = gdevs
  end
  return self.gdevs
end

-- A step of one platform call for the batch: intent, call (retried in
-- doubt), then its record; a failure that is not fatal is the batch's
-- (every device of it fails with it).
local function one_call(call, record)
  return function(b, s)
    local ok, err = b:begin(s)
    if not ok then return nil, err end
    local res, cerr = b:try(s, function(in_doubt) return call(b, in_doubt) end)
    if res then return record(res) end
    if fatal(cerr) then return nil, cerr end
    return { ok = false, c = cerr.errcode, m = cerr.message }
  end
end

local add_to_group = one_call(function(b, d)
  return b.job.steps:group_add(b.done.gcreate.g, sns_of(b:group_devices()), d)
end, function(res) return { ok = true, f = next(res.failed) and res.failed or nil } end)

-- The steps in order. wanted: whether the job has it; settled: the record
-- it gets without running (it follows from earlier ones, so it is not
-- journalled either); run: its record, or nil, err to stop the job.
local STEPS = {
  { name = "wmpf", wanted = function(job) return job.wmpf end,
    run = one_call(function(b, d)
      local ids = {}
      for i, dev in ipairs(b.devs) do ids[i] = dev.device_id end
      return b.job.steps:add_devices(b.job.product_state.product_id, ids, d)
    end, function() return { ok = true } end) },
  { name = "recon", wanted = function(job) return job.groups and job.reconcile end,
    run = function(b)
      local kept, err = b.job:_reconcile_groups(b.devs)
      if not kept then return nil, err end
      return { ok = true, k = kept }
    end },
  { name = "gcreate", wanted = function(job) return job.groups end,
    settled = function(b) return #b:group_devices() == 0 and { ok = true } or nil end,
    run = one_call(function(b, d)
      local prefix = b.job.product:sub(1, 20) -- ASCII by the product name's rule: no character is cut
      return b.job.steps:group_create(("%s-%d"):format(prefix, b.n), d)
    end, function(gid) return { ok = true, g = gid } end) },
  { name = "group", wanted = function(job) return job.groups end,
    settled = function(b) return #b:group_devices() == 0 and { ok = true } or nil end,
    run = function(b, s)
      local gc = b.done.gcreate
      if not gc.ok then return { ok = false, c = gc.c, m = gc.m } end
      return add_to_group(b, s)
    end },
  { name = "wecom", wanted = function(job) return job.wecom end,
    run = function(b, s)
      local ok, err = b:begin(s)
      if not ok then return nil, err end
      local steps, qr, failed = b.job.steps, {}, {}
      local sns = sns_of(b.devs)
      local results
      if steps.register_many then -- concurrent first pass; failures go through try() one by one
        results = steps:register_many(sns, b.doubt.wecom or b.job.reconcile)
      end
      for i, sn in ipairs(sns) do
        local code, werr
        local r = results and results[i]
        if r and r[1] then code = r[1]
        elseif r and r[2] and not r[2].retryable then werr = r[2]
        else
          code, werr = b:try(s, function(d) return steps:register_sn(sn, d or (r ~= nil)) end)
        end
        if code then qr[sn] = code
        elseif fatal(werr) then return nil, werr
        else failed[sn] = { c = werr.errcode, m = werr.message } end
      end
      return { ok = true, q = qr, f = next(failed) and failed or nil }
    end },
}

-- Runs the steps of one batch that the journal has not recorded. `b` is the
-- batch: { n =, rows = { all rows }, devices = { valid rows } }.
function Job:_run_batch(b, st)
  local done = st.done[b.n] or {}
  st.done[b.n] = done
  if #b.devices == 0 then return true end
  local batch = setmetatable({ job = self, n = b.n, devs = b.devices, done = done, doubt = st.intent[b.n] or {} },
    Batch)
  for _, step in ipairs(STEPS) do
    local s = step.name
    if not done[s] and step.wanted(self) then
      local rec = step.settled and step.settled(batch)
      if rec then
        done[s] = rec
      else
        local err
        rec, err = step.run(batch, s)
        if not rec then return nil, err end
        rec.t, rec.b, rec.s = "D", b.n, s
        local ok, jerr = self.journal:append(rec)
        if not ok then return nil, jerr end
        done[s] = rec
      end
    end
  end
  return true
end

return M
