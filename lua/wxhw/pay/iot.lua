--- WeChat Pay IoT device management (/v3/iotmanage/...): the enum tables of
-- the smart device list
-- (pay.weixin.qq.com/wiki/doc/wxfacepay/develop/point/iotmanage-devices.html), the decoding of device records,
-- and the Pay methods that list devices and read factory checks (`M.methods`,
-- installed on wxhw.pay's objects).
local errors = require "wxhw.errors"
local paginate = require "wxhw.paginate"

local M = {}

M.MAX_LIMIT = 100      -- devices per page
M.QPS = 20             -- rule 20000730, per client and API
M.DAILY_QUOTA = 50000  -- rule 20000731, per user and API, 86 400 s

--- device_category_code → device_category (设备品类枚举).
M.categories = {
  [0] = "未知设备", [1] = "青蛙设备", [2] = "桌面收银设备", [3] = "行业收银硬件", [4] = "刷卡机",
  [5] = "智能音响", [6] = "智能扫码枪", [7] = "无人自助设备", [8] = "团餐设备", [9] = "自助收银设备",
  [10] = "孵化类设备", [11] = "闸机", [200] = "临时类",
}

--- device_class_code → device_class (设备类型枚举).
M.classes = {
  [0] = "未知", [1] = "基础版", [2] = "Mini版", [3] = "Pro版",
  [101] = "大屏自助收银机", [102] = "校园刷卡机", [103] = "自助售货机", [104] = "取票机",
  [105] = "充电宝设备", [106] = "自助一体机", [107] = "团餐机", [108] = "游艺机",
  [109] = "自助存取柜", [110] = "手持设备", [111] = "加油加气设备", [112] = "智能购物车",
  [114] = "桌面单屏刷脸设备", [116] = "桌面双屏刷脸设备", [118] = "桌面双屏POS设备",
  [120] = "桌面称重设备", [124] = "医保设备", [132] = "彩票机", [134] = "充电桩设备",
  [172] = "视觉识别设备", [180] = "门禁设备", [200] = "临时类别",
}

--- app_scene_code → app_scene (刷脸应用软件模式枚举).
M.app_scenes = { [1] = "SDK模式", [2] = "APP模式", [3] = "离线模式", [4] = "境外APP模式" }

-- The codes are strings in the API ("2"); accept numbers too. Anything that is
-- not a plain decimal integer has no name.
local function lookup(tbl, code)
  if code == nil then return nil end
  local s = tostring(code)
  if not s:match("^%d+$") then return nil end
  return tbl[tonumber(s)]
end

function M.category_name(code) return lookup(M.categories, code) end
function M.class_name(code) return lookup(M.classes, code) end
function M.app_scene_name(code) return lookup(M.app_scenes, code) end

--- Adds readable names to a device record, in place, keeping every code and
-- every field the server sent: `category_name`, `class_name`, `app_scene_name`
-- (nil for a code not in the tables), `activated` (boolean).
function M.decode_device(d)
  d.category_name = M.category_name(d.device_category_code)
  d.class_name = M.class_name(d.device_class_code)
  d.app_scene_name = M.app_scene_name(d.app_scene_code)
  if d.activation_status ~= nil then d.activated = d.activation_status == "ACTIVATED" end
  return d
end

--- Checks a listing request before anything is sent. Returns limit, offset
-- or nil, message.
function M.check_page(limit, offset)
  if type(limit) ~= "number" or limit ~= math.floor(limit) or limit < 1 then
    return nil, "limit must be an integer from 1 to " .. M.MAX_LIMIT
  end
  if limit > M.MAX_LIMIT then
    return nil, "limit " .. limit .. " exceeds the API maximum of " .. M.MAX_LIMIT .. " devices per page"
  end
  if type(offset) ~= "number" or offset ~= math.floor(offset) or offset < 0 then
    return nil, "offset must be a non-negative integer"
  end
  return limit, offset
end

--- device_sn of the device-inspections API: 5-200 letters and digits
-- ("字符长度限制 [5, 200], 必须是字母数字", device-inspections doc); it is a
-- path segment, so nothing else may change the URL being signed.
function M.check_sn(sn)
  if type(sn) ~= "string" or #sn < 5 or #sn > 200 or sn:find("[^0-9A-Za-z]") then
    return nil, "device_sn must be 5-200 letters and digits"
  end
  return sn
end

-- ------------------------------------------------------------ Pay methods

local P = {}
M.methods = P

-- Fetches one page of /v3/iotmanage/devices (decoded device records): signed,
-- paced, retried and verified by Pay:request.
function P:_device_page(req, decode)
  local data, err = self:request{ method = "GET", path = "/v3/iotmanage/devices",
    query = { limit = string.format("%d", req.limit), offset = string.format("%d", req.offset) } }
  if not data then return nil, err end
  if type(data.data) ~= "table" then data.data = {} end
  if decode ~= false then
    for _, d in ipairs(data.data) do M.decode_device(d) end
  end
  return data
end

-- Several pages at once: each page runs the whole pipeline in its own job of
-- the mux transport (wxhw.transport.mux). The jobs take their places in the
-- rate limit one after another (20 QPS holds), then their requests travel
-- together; a 429 or 5xx is retried inside its job.
function P:_device_pages(reqs, decode)
  local out, jobs = {}, {}
  for i, r in ipairs(reqs) do jobs[i] = function() return self:_device_page(r, decode) end end
  if not self.mux then -- a transport without batch: one after another
    for i, job in ipairs(jobs) do
      local page, err = job()
      out[i] = page or err
    end
    return out
  end
  for i, r in ipairs(self.mux:run(jobs, #jobs)) do out[i] = r[1] or r[2] end
  return out
end

--- A pager over /v3/iotmanage/devices (wxhw.paginate, offset style: the
-- documented links.next example is not a well-formed URL). opts: limit (1-100,
-- default 100), offset (default 0), concurrency, checkpoint, on_page, decode
-- (default true), on_change. Returns the pager or nil, err.
function P:iot_devices_pager(opts)
  opts = opts or {}
  local limit, offset = M.check_page(opts.limit or M.MAX_LIMIT, opts.offset or 0)
  if not limit then return errors.fail("input", offset) end
  local decode = opts.decode
  return paginate.new{
    style = "offset", limit = limit, offset = offset,
    fetch = function(req) return self:_device_page(req, decode) end,
    fetch_many = function(reqs) return self:_device_pages(reqs, decode) end,
    concurrency = opts.concurrency or 1,
    key = function(d) return d.device_sn end,
    checkpoint = opts.checkpoint, on_page = opts.on_page, on_change = opts.on_change,
  }
end

--- Iterator over the merchant's devices:
--   for device, err in pay:iot_devices{ limit = 100 } do ... end
-- Each device keeps the API's fields and codes and gains category_name,
-- class_name, app_scene_name, activated. On failure the loop gets (false,
-- err) once. The second value returned is the pager (pager.err, counts).
function P:iot_devices(opts)
  local p, err = self:iot_devices_pager(opts)
  if not p then
    local done = false
    return function()
      if done then return nil end
      done = true
      return false, err
    end
  end
  return p:iter(), p
end

--- Factory-check result of one device (/v3/iotmanage/device-inspections/{sn}).
function P:device_inspection(sn)
  local ok, msg = M.check_sn(sn)
  if not ok then return errors.fail("input", msg) end
  return self:request{ method = "GET", path = "/v3/iotmanage/device-inspections/" .. sn }
end

return M
