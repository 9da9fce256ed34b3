--- The step executor provisioning runs: each platform call it needs, over
-- the product modules (wxhw.wmpf, wxhw.mp, wxhw.wecom). `in_doubt` is true
-- when a previous run may have completed the step before it was killed:
-- steps then check the platform first where an API to check exists.
-- A test can pass its own executor with the same methods.
local errors = require "wxhw.errors"

local M = {}
local S = {}
S.__index = S

--- o: wmpf (wxhw.wmpf object, host-app client) with model_name (the WMPF
-- model name adddevice requires), mp (wxhw.mp object with model_id), wecom
-- (wxhw.wecom object), model_id, english/chinese/device_default names
-- (default: the product name).
-- mux (wxhw.provision.mux the clients use) + concurrency: per-device calls
-- of a batch run that many at a time.
function M.new(o)
  if o.wmpf and (type(o.model_name) ~= "string" or o.model_name == "") then
    error("provision steps: model_name required with wmpf (adddevice needs the registered model name)", 2)
  end
  return setmetatable({ wmpf = o.wmpf, mp = o.mp, wecom = o.wecom, model_id = o.model_id, model_name = o.model_name,
    names = o.names or {}, mux = o.mux, concurrency = o.concurrency or 8, calls = {} }, S)
end

function S:_count(name) self.calls[name] = (self.calls[name] or 0) + 1 end

local function need(self, what)
  if not self[what] then error("provision: the " .. what .. " API object was not configured", 3) end
  return self[what]
end

function S:create_product(name)
  self:_count("createproduct")
  local n = self.names
  return need(self, "wmpf"):create_product{ english_product_name = n.english or name,
    chinese_product_name = n.chinese or name, device_default_name = n.device_default or name }
end

function S:register_pubkey(product_id, pem)
  self:_count("registerpubkey")
  return need(self, "wmpf"):register_pubkey{ product_id = product_id, pubkey = pem }
end

function S:bind_wxa_app(product_id, appid)
  self:_count("bindwxaapp")
  return need(self, "wmpf"):bind_wxa_app{ product_id = product_id, appid = appid }
end

-- adddevice is a set insert on WeChat's side: re-sending an in-doubt batch is harmless.
function S:add_devices(product_id, ids)
  self:_count("adddevice")
  return need(self, "wmpf"):add_devices{ product_id = product_id, device_ids = ids, chunk = #ids, checked = true,
    model_name = self.model_name }
end

function S:group_create(name)
  self:_count("group createid")
  return need(self, "mp"):group_create{ group_name = name, model_id = self.model_id }
end

--- The sns a group holds (getinfo) as a set, or nil, err.
function S:group_members(group_id)
  self:_count("group getinfo")
  local info, err = need(self, "mp"):group_info(group_id)
  if not info then return nil, err end
  local have = {}
  for _, d in ipairs(info.device_list) do if type(d) == "table" and d.sn then have[d.sn] = true end end
  return have
end

--- Adds sns to the group; returns { failed = { [sn] = { c =, m = } } }. In
-- doubt, devices already in this group (getinfo) count as added.
function S:group_add(group_id, sns, in_doubt)
  local api = need(self, "mp")
  local todo = sns
  if in_doubt then
    local have, err = self:group_members(group_id)
    if not have then return nil, err end
    todo = {}
    for _, sn in ipairs(sns) do if not have[sn] then todo[#todo + 1] = sn end end
    if #todo == 0 then return { failed = {} } end
  end
  self:_count("group adddevice")
  local devices = {}
  for i, sn in ipairs(todo) do devices[i] = { sn = sn, model_id = self.model_id } end
  local res, err = api:group_add{ group_id = group_id, devices = devices, force_add = false }
  if not res then return nil, err end
  local failed, already = {}, false
  for _, f in ipairs(res.failed) do
    failed[f.sn] = { c = f.errcode, m = f.errmsg }
    if f.errcode == 9800015 then already = true end
  end
  if already then -- "already in a group": fine if the group is ours (a repeated request)
    local have = self:group_members(group_id) or {}
    for sn, f in pairs(failed) do
      if f.c == 9800015 and have[sn] then failed[sn] = nil end -- clearing a field while traversing is allowed
    end
  end
  return { failed = failed }
end

--- register_sn → qr_code. In doubt, a registered SN's QR code comes from its details.
function S:register_sn(sn, in_doubt)
  local api = need(self, "wecom")
  if in_doubt then
    self:_count("wecom get_device_detail")
    local d = api:device_detail(sn)
    if d and d.qr_code and d.qr_code ~= "" then return d.qr_code end
  end
  self:_count("wecom register_sn")
  local qr, err = api:register_sn(sn)
  if not qr then return nil, err end
  if type(qr) ~= "string" then return errors.fail("wx", "register_sn answered without a qr_code") end
  return qr
end

--- register_sn for many SNs, `concurrency` at a time when a mux is set.
-- Returns a list of { qr } or { nil, err } in order.
function S:register_many(sns, in_doubt)
  local fns = {}
  for i, sn in ipairs(sns) do fns[i] = function() return self:register_sn(sn, in_doubt) end end
  if self.mux and self.concurrency > 1 then
    -- fetch the token here: a coroutine waiting on another's token lease would
    -- block the whole scheduler until the lease timed out
    local ok, err = need(self, "wecom"):model_token()
    if not ok then
      local out = {}
      for i = 1, #sns do out[i] = { nil, err } end
      return out
    end
    return self.mux:run(fns, self.concurrency)
  end
  local out = {}
  for i, fn in ipairs(fns) do out[i] = { fn() } end
  return out
end

return M
