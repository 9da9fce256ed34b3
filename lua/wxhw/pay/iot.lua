--- WeChat Pay IoT device management (/v3/iotmanage/...): the enum tables of
-- the smart device list
-- (pay.weixin.qq.com/wiki/doc/wxfacepay/develop/point/iotmanage-devices.html) and the decoding of device records.
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

return M
