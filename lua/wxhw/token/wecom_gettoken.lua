--- WeCom `GET /cgi-bin/gettoken` (developer.work.weixin.qq.com/document/path/91039):
-- one token per corp + app secret.
return {
  name = "wecom",
  product = "wecom",
  method = "GET",
  path = "/cgi-bin/gettoken",
  query = { corpid = "$corpid", corpsecret = "$corpsecret" },
  required = { "corpid", "corpsecret" },
  token_field = "access_token",
  ids = { "corpid" },
  secrets = { "corpsecret" },
  force_limits = { per_day = 20, spacing = 30 },
}
