--- WeCom openhw device token (developer.work.weixin.qq.com/document/path/96022), fetched with the model
-- token: pass `model_token` (a manager for the model_token source).
return {
  name = "device_token",
  product = "wecom",
  method = "POST",
  path = "/cgi-bin/openhw/get_device_token",
  query = { model_access_token = "$model_token" },
  json = { device_sn = "$device_sn", device_secret = "$device_secret" },
  required = { "device_sn", "device_secret", "model_token" },
  parent = "model_token",
  token_field = "device_access_token",
  ids = { "device_sn" },
  secrets = { "device_secret" },
  force_limits = { per_day = 20, spacing = 30 },
}
