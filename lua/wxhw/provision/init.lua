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
-- finds duplicate candidates with a Bloom filter (fileio.seen), the second
-- provisions batches of devices in input order. Every completed step is in
-- the journal before the manifest row that depends on it is written, so a run
-- killed anywhere resumes where it stopped; a finished job re-run changes nothing.
--
-- This file is the Job API: options, row checks, pass 1 (scan), the plan,
-- the journal's state and the job's lock. The rest are Job methods from
-- provision/product.lua (the product and its state files), batch.lua (one
-- batch's platform steps) and run.lua (pass 2 and its commits).
local fileio = require "wxhw.fileio"
local input = require "wxhw.provision.input"
local journal = require "wxhw.provision.journal"
local product = require "wxhw.provision.product"
local batch = require "wxhw.provision.batch"
local run = require "wxhw.provision.run"
local mp = require "wxhw.mp"
local wmpf = require "wxhw.wmpf"
local wecom = require "wxhw.wecom"

local M = {}
local Job = {}
Job.__index = Job

M.VERSION = run.VERSION
M.fatal = batch.fatal
-- how long a run waits for another one setting up the same product (s)
M.PRODUCT_LOCK_WAIT = 300
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
  self.product_lock_wait = o.product_lock_wait or M.PRODUCT_LOCK_WAIT
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

function Job:_open_input()
  local cols = { "device_id", "sn" }
  if self.only_failed then
    cols[#cols + 1] = "status"; cols[#cols + 1] = "group_id"; cols[#cols + 1] = "error"
  end
  return input.open(self.input, { columns = cols, format = self.format })
end

-- Rows of an --only-failed input that are not retried.
function Job:_skip_row(row)
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
  local seen = fileio.seen(bits, 4)
  local suspects, nsus = {}, 0
  local rows, invalid, examples = 0, 0, {}
  for row in r:rows() do
    if not self:_skip_row(row) then
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

------------------------------------------------------------------ journal

-- What the journal tells a run: the steps done (D) and in flight (I) of the
-- batches the manifest does not hold yet, where the manifest was last
-- vouched for (M), the header (H), the summary of a finished job (E), the
-- steps resent after crashes (R).
function Job:_fresh_journal_state()
  self.journal_state = { done = {}, intent = {}, mbatch = 0, moffset = 0, header = nil, finished = nil, resent = {} }
  return self.journal_state
end

-- Loads the journal keeping only what is not yet in the manifest; opening
-- it takes the job's lock (once: `lock` may have done it already).
function Job:_load_journal()
  if self.journal then return self.journal, self.journal_state end
  local st = self:_fresh_journal_state()
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
  self.journal = j
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

------------------------------------------------------------------ the rest

for _, part in ipairs{ product, batch, run } do
  for name, f in pairs(part.methods) do Job[name] = f end
end

return M
