--- The product a provisioning job registers devices under, and its state
-- files in the state dir: <product>.product.json (product_id, key_version,
-- the bound app, the back end), <product>.key.pem (the P-256 key that signs
-- the devices, 0600) and <product>.lock. M.methods are Job methods
-- (wxhw.provision mixes them in).
local cjson = require "cjson.safe"
local errors = require "wxhw.errors"
local crypto = require "wxhw.crypto"
local clock = require "wxhw.clock"
local fileio = require "wxhw.fileio"
local wmpf = require "wxhw.wmpf"

local M = {}
local Job = {}
M.methods = Job

local read_file = fileio.read_file

function Job:_state_path(ext) return self.state_dir .. "/" .. self.product .. ext end

function Job:_product_state()
  local s = read_file(self:_state_path(".product.json"))
  local st = s and cjson.decode(s) or {}
  if type(st.key_version) == "number" then st.key_version = math.floor(st.key_version) end
  return st
end

-- The state dir, made on first use (mkdir -p).
function Job:_state_dir() return fileio.mkdir_p(self.state_dir) end

-- Each completed step is saved before the next starts.
function Job:_save_product(state)
  local ok, err = self:_state_dir()
  if not ok then return nil, err end
  return fileio.write_atomic(self:_state_path(".product.json"), cjson.encode(state))
end

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

-- Product create-or-reuse, key pair generated-or-given, registerpubkey,
-- bindwxaapp. Another job on this state dir (another device list, another
-- manifest) may be setting up the same product right now: the record is
-- read and the product, key and binding made under an exclusive lock on
-- <product>.lock, so one run creates them and the others reuse them.
-- Without it each run created its own product, the record and the key file
-- kept the last writer's (or a rename of the shared .tmp failed), and the
-- other product was orphaned with its devices and its private key lost.
function Job:_ensure_product()
  local dok, derr = self:_state_dir()
  if not dok then return nil, derr end
  local path = self:_state_path(".lock")
  local f, oerr = io.open(path, "a+b")
  if not f then return errors.fail("io", "cannot open " .. path .. ": " .. tostring(oerr)) end
  local deadline = clock.monotonic() + self.product_lock_wait
  while true do
    local ok, lerr = fileio.lock(f)
    if ok then break end
    if ok == nil or clock.monotonic() > deadline then
      f:close()
      return nil, lerr or errors.new("state", ("another run has been setting up product %s for %d s (it holds %s)")
        :format(self.product, self.product_lock_wait, path), { reason = "locked" })
    end
    clock.sleep(0.05)
  end
  local state, err = self:_ensure_product_locked()
  f:close() -- releases the lock
  return state, err
end

-- The signing key: given, kept in the state dir, or made now (before the
-- product's key_version exists: a registered key that is lost cannot sign).
function Job:_signing_key(state)
  local pem = self.key or read_file(self:_state_path(".key.pem"))
  if not pem then
    if state.key_version then
      return errors.fail("input", "product " .. self.product .. " has key_version " .. state.key_version ..
        " but its private key is not in " .. self.state_dir .. "; pass --key")
    end
    pem = crypto.generate_ec_key():private_pem()
    local ok, err = fileio.write_atomic(self:_state_path(".key.pem"), pem, true)
    if not ok then return nil, err end
  end
  local key, kerr = crypto.private_key(pem)
  if not key then return nil, kerr end
  if key:type() ~= "ec" then return errors.fail("input", "the WMPF key must be EC P-256") end
  return key
end

-- The set-up steps in order: what each one records in the product state,
-- and when it is already done.
local SETUP = {
  { done = function(_, st) return st.product_id end,
    run = function(job, st) return job.steps:create_product(job.product) end, field = "product_id" },
  { done = function(_, st) return st.key_version end,
    run = function(job, st) return job.steps:register_pubkey(st.product_id, job.signing_key:public_pem()) end,
    field = "key_version" },
  { done = function(job, st) return not job.appid or st.bound == job.appid end,
    run = function(job, st)
      local ok, err = job.steps:bind_wxa_app(st.product_id, job.appid)
      return ok and job.appid, err
    end, field = "bound" },
}

function Job:_ensure_product_locked()
  local state = self:_product_state()
  local berr = self:_backend_error(state)
  if berr then return nil, berr end
  state.backend = self.backend
  state.name = self.product
  if self.product_id then state.product_id = wmpf.product_id_string(self.product_id) end
  if self.key_version then state.key_version = self.key_version end
  local key, kerr = self:_signing_key(state)
  if not key then return nil, kerr end
  self.signing_key = key
  for _, step in ipairs(SETUP) do
    if not step.done(self, state) then
      local v, err = step.run(self, state)
      if not v then return nil, err end
      state[step.field] = v
      local ok, serr = self:_save_product(state)
      if not ok then return nil, serr end
    end
  end
  self.product_state = state
  return state
end

return M
