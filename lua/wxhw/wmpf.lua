--- WMPF (Mini Program hardware framework) runtime management, as the WMPF
-- back-end reference 硬件信息管理后台接口 documents it: createproduct,
-- registerpubkey, adddevice, bindwxaapp, pushappmsg, plus the device
-- signature. See docs/wmpf.md for the public pages.
--
--   local w = wxhw.wmpf.new(client)   -- client: token_provider for the mobile (host) app
--   local product_id = w:create_product{ english_product_name =, chinese_product_name =,
--                                        device_default_name = }
--   local key_version = w:register_pubkey{ product_id =, pubkey = key:public_pem() }
--   local res = w:add_devices{ product_id =, device_ids = { ... }, model_name = }   -- chunked (100)
--   w:bind_wxa_app{ product_id =, appid = "wx..." }
--   w:push_app_msg{ msg =, push_token = }   -- host-app or Mini Program client
local crypto = require "wxhw.crypto"
local errors = require "wxhw.errors"
local json = require "wxhw.json"

local M = {}

M.PUSH_LIMIT = 5 * 1024
M.CHUNK = 100 -- adddevice has no documented list limit; batch conservatively
M.DEVICE_ID_MAX = 128

--- pushappmsg errcodes (developers.weixin.qq.com/doc/oplatform/Miniprogram_Frame/api/backend/pushAppMsg.html).
M.ERRCODES = { [40101] = "parameter error", [45002] = "push message longer than 5 KB",
  [48012] = "push_token invalid (expired, or issued for the other sender: host app vs Mini Program)" }

--- Product ids are numbers up to 16+ digits: keep them as decimal strings.
function M.product_id_string(id)
  if type(id) == "number" then
    if id ~= math.floor(id) or id < 0 then return nil end
    return string.format("%.0f", id)
  end
  if type(id) == "string" and id:match("^%d+$") then return id end
  if type(id) == "table" and tostring(id):match("^%d+$") then return tostring(id) end
  return nil
end

--- A device id WMPF can take: 1-128 printable ASCII bytes, no spaces.
function M.device_id_error(id)
  if type(id) ~= "string" or id == "" then return "device_id is required" end
  if #id > M.DEVICE_ID_MAX then return ("device_id is %d bytes (at most 128)"):format(#id) end
  local bad = id:find('[^!#-+%-.-~]') -- printable ASCII except space, '"' and ','
  if bad then
    local c = id:sub(bad, bad)
    if c == "," or c == '"' then return "device_id may not contain a comma or quote" end
    return ("device_id has a space or non-printable byte at %d"):format(bad)
  end
end

--- The signature a WMPF device presents at activation: ECDSA P-256 over
-- SHA-256 of "<productId>_<deviceId>", base64 of the DER signature on one line.
-- `key` is a wxhw.Key (EC P-256) or a PEM string.
function M.device_signature(key, product_id, device_id)
  if type(key) == "string" then
    local k, err = crypto.private_key(key)
    if not k then return nil, err end
    key = k
  end
  if key:type() ~= "ec" then error("device_signature: EC P-256 private key required", 2) end
  if product_id == nil or device_id == nil then error("device_signature: product_id and device_id required", 2) end
  local pid = M.product_id_string(product_id) or tostring(product_id)
  return crypto.base64_encode(key:sign(pid .. "_" .. tostring(device_id)))
end

local W = {}
W.__index = W

function M.new(client)
  if type(client) ~= "table" or type(client.call) ~= "function" then
    error("wxhw.wmpf.new: a wxhw.client (host-app token) is required", 2)
  end
  return setmetatable({ client = client }, W)
end

function W:__tostring() return "wxhw.wmpf (WMPF runtime backend APIs)" end

function W:_post(path, body)
  local res, err = self.client:call{ product = "wmpf", method = "POST", path = path, json = body, token = true }
  if not res and err and err.errcode and M.ERRCODES[err.errcode] and path:find("pushappmsg", 1, true) then
    err.message = err.message .. " (" .. M.ERRCODES[err.errcode] .. ")"
  end
  return res, err
end

local function pid_arg(o, fn)
  local pid = M.product_id_string(o.product_id)
  if not pid then error("wxhw.wmpf." .. fn .. ": product_id must be a non-negative integer", 3) end
  return json.bigint(pid)
end

--- createproduct → product_id (a decimal string: ids exceed 2^53 safely).
-- Rate limited on WeChat's side: create once and store the id.
function W:create_product(o)
  if type(o) ~= "table" then error("wxhw.wmpf.create_product: options table expected", 2) end
  for _, k in ipairs{ "english_product_name", "chinese_product_name", "device_default_name" } do
    if type(o[k]) ~= "string" or o[k] == "" then
      return errors.fail("input", "create_product needs " .. k)
    end
  end
  local res, err = self:_post("/wxa/business/runtime/createproduct", {
    english_product_name = o.english_product_name, chinese_product_name = o.chinese_product_name,
    device_default_name = o.device_default_name })
  if not res then return nil, err end
  local pid = M.product_id_string(res.product_id)
  if not pid then return errors.fail("wx", "createproduct answered without a product_id") end
  return pid, res
end

--- registerpubkey → key_version (number). `pubkey`: PEM, or a wxhw key.
function W:register_pubkey(o)
  if type(o) ~= "table" then error("wxhw.wmpf.register_pubkey: options table expected", 2) end
  local pem = o.pubkey
  if type(pem) == "userdata" or type(pem) == "table" then pem = pem:public_pem() end
  if type(pem) ~= "string" then error("wxhw.wmpf.register_pubkey: pubkey must be a PEM string or key", 2) end
  local pub, perr = crypto.public_key(pem)
  if not pub then return nil, perr end
  if pub:type() ~= "ec" then return errors.fail("input", "WMPF needs an EC P-256 (prime256v1) public key") end
  local res, err = self:_post("/wxa/business/runtime/registerpubkey",
    { product_id = pid_arg(o, "register_pubkey"), pubkey = pub:pem() })
  if not res then return nil, err end
  local kv = tonumber(res.key_version)
  if not kv then return errors.fail("wx", "registerpubkey answered without a key_version") end
  return math.floor(kv), res
end

--- adddevice in chunks of `chunk` (default 100). Checks ids locally first.
-- `model_name` (required by the addDevice doc and always sent by the official
-- WMPF tooling) is the model name registered on the WeChat terminal
-- cooperation platform. Returns { added = n, chunks = n } or nil, err (err.added = ids added before
-- the failing chunk, err.chunk = its index).
function W:add_devices(o)
  if type(o) ~= "table" then error("wxhw.wmpf.add_devices: options table expected", 2) end
  local pid = pid_arg(o, "add_devices")
  local ids = o.device_ids or o.device_id_list
  if type(ids) ~= "table" or #ids == 0 then error("wxhw.wmpf.add_devices: device_ids must be a non-empty list", 2) end
  if type(o.model_name) ~= "string" or o.model_name == "" then
    error("wxhw.wmpf.add_devices: model_name required (the model registered on the WeChat terminal cooperation platform)", 2)
  end
  if not o.checked then -- `checked = true`: the caller validated every id already
    for i, id in ipairs(ids) do
      local msg = M.device_id_error(id)
      if msg then return errors.fail("input", ("device %d: %s"):format(i, msg), { index = i }) end
    end
  end
  local chunk = o.chunk or M.CHUNK
  local added, n = 0, 0
  for first = 1, #ids, chunk do
    local list = {}
    for i = first, math.min(first + chunk - 1, #ids) do list[#list + 1] = ids[i] end
    n = n + 1
    local body = { product_id = pid, device_id_list = list, model_name = o.model_name }
    local res, err = self:_post("/wxa/business/runtime/adddevice", body)
    if not res then
      err.added, err.chunk = added, n
      return nil, err
    end
    added = added + #list
  end
  return { added = added, chunks = n }
end

--- bindwxaapp: let the Mini Program `appid` run on the product (same owner only).
function W:bind_wxa_app(o)
  if type(o) ~= "table" then error("wxhw.wmpf.bind_wxa_app: options table expected", 2) end
  if type(o.appid) ~= "string" or o.appid == "" then error("wxhw.wmpf.bind_wxa_app: appid required", 2) end
  local res, err = self:_post("/wxa/business/runtime/bindwxaapp",
    { product_id = pid_arg(o, "bind_wxa_app"), appid = o.appid })
  if not res then return nil, err end
  return true, res
end

--- pushappmsg. `msg` (string, or a table sent as JSON) must be at most 5 KB;
-- send with the client whose token matches how the device got its push_token.
function W:push_app_msg(o)
  if type(o) ~= "table" then error("wxhw.wmpf.push_app_msg: options table expected", 2) end
  local msg = o.msg
  if type(msg) == "table" then msg = json.encode(msg) end
  if type(msg) ~= "string" then error("wxhw.wmpf.push_app_msg: msg must be a string or table", 2) end
  if #msg > M.PUSH_LIMIT then
    return errors.fail("input", ("push message is %d bytes; WMPF accepts at most %d (5 KB)"):format(#msg, M.PUSH_LIMIT),
      { errcode = 45002, size = #msg })
  end
  if type(o.push_token) ~= "string" or o.push_token == "" then
    return errors.fail("input", "push_token is required (from WMPFDeviceApi.getPushToken on the device)", { errcode = 40101 })
  end
  local res, err = self:_post("/wxa/business/runtime/pushappmsg", { msg = msg, push_token = o.push_token })
  if not res then return nil, err end
  return true, res
end

return M
