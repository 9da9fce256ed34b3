--- Pass 2 of a provisioning job: Job:run reads the input again in order,
-- runs each batch's steps (provision/batch.lua), writes its manifest rows
-- and commits them. M.methods are Job methods (wxhw.provision mixes them in).
--
-- Group commit: the manifest is fsync'd, then an M record vouches for it
-- and the journal is fsync'd, at most every commit_interval seconds. A
-- batch finished but not yet vouched for is rebuilt from its D records.
local errors = require "wxhw.errors"
local clock = require "wxhw.clock"
local input = require "wxhw.provision.input"
local manifest = require "wxhw.provision.manifest"
local progress = require "wxhw.provision.progress"
local wmpf = require "wxhw.wmpf"

local M = {}
local Job = {}
M.methods = Job

M.VERSION = 1 -- of the journal's records: a journal of another version is another job's

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() end
  return f ~= nil
end

------------------------------------------------------------------ the job's header

function Job:_header()
  return { t = "H", v = M.VERSION, fingerprint = self.scanned.fingerprint, product = self.product,
    wmpf = self.wmpf and true or false, groups = self.groups and true or false,
    wecom = self.wecom and true or false, batch = self.batch, only_failed = self.only_failed and true or false,
    backend = self.backend, force = self.force and true or nil }
end

local HEADER_KEYS = { "v", "fingerprint", "product", "wmpf", "groups", "wecom", "batch", "only_failed" }

-- Whether the journal is this job's, and what its state asks for: nil to
-- go on, or a summary (already complete) or nil, err to stop here.
function Job:_check_journal(st, header)
  for _, k in ipairs(HEADER_KEYS) do
    if st.header[k] ~= header[k] then
      return "stop", errors.new("state", ("the journal %s belongs to another job (%s differs: the input file or " ..
        "options changed); pass --force to start this job over, or use another --out"):format(self.journal_path, k))
    end
  end
  if st.header.backend and header.backend and st.header.backend ~= header.backend then
    return "stop", errors.new("state", ("the journal %s was written against %s; this run uses %s"):format(
      self.journal_path, st.header.backend, header.backend), { reason = "backend" })
  end
  if st.finished then
    local sum = st.finished.summary or {}
    sum.already_complete = true
    return "done", sum
  end
  if not self.resume then
    return "stop", errors.new("state", ("a journal for this job exists (%s): pass --resume to continue it, " ..
      "or --force to start over"):format(self.journal_path))
  end
end

------------------------------------------------------------------ rows

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

local KEY_LABEL = { d = "device_id", m = "sn", w = "sn (WeCom compares case-insensitively)" }

-- The exact duplicate check of pass 2, for the keys pass 1 suspected: the
-- message for a row that repeats an earlier one, else nil (and the row's
-- suspected keys are remembered in `first`).
function Job:_duplicate(row, suspects, first)
  local k1, k2, k3 = self:keys(row)
  local s1, s2, s3 = suspects[k1], k2 and suspects[k2], k3 and suspects[k3]
  if not (s1 or s2 or s3) then return nil end
  for _, k in ipairs{ s1 and k1 or false, s2 and k2 or false, s3 and k3 or false } do
    if k and first[k] then
      local label = KEY_LABEL[k:sub(1, 1)] -- the key's kind, d, m or w
      return ("duplicate %s %s (first at line %d)"):format(label, k:sub(3), first[k])
    end
  end
  if s1 then first[k1] = row.line end
  if s2 then first[k2] = row.line end
  if s3 then first[k3] = row.line end
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

------------------------------------------------------------------ run

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
    st = self:_fresh_journal_state()
  end
  if st.header then
    local stop, why = self:_check_journal(st, header)
    if stop == "done" then
      j:close(); self.journal = nil
      return why
    elseif stop then
      return fail(why)
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
    if not self:_skip_row(row) then
      self:_old_group(row)
      local bad = self:row_error(row)
      if not bad and any_suspect then bad = self:_duplicate(row, suspects, first) end
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
