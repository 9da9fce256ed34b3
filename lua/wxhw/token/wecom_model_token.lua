--- WeCom openhw model token (developer.work.weixin.qq.com/document/path/95992). `model_ticket` is pushed
-- to the callback URL every 10 minutes: pass a function returning the latest.
return {
  name = "model_token",
  product = "wecom",
  method = "POST",
  path = "/cgi-bin/openhw/get_model_token",
  json = { model_id = "$model_id", model_secret = "$model_secret", model_ticket = "$model_ticket" },
  required = { "model_id", "model_secret", "model_ticket" },
  token_field = "model_access_token",
  ids = { "model_id" },
  secrets = { "model_secret" },
  force_limits = { per_day = 20, spacing = 30 },
}
