--- `POST /cgi-bin/stable_token`
-- (developers.weixin.qq.com/doc/service/api/base/api_getstableaccesstoken): normal mode returns the
-- current token (the platform rotates it 5 minutes before expiry);
-- force_refresh=true rotates at once, at most 20 times a day, 30 s apart.
-- The manager sends force only from an explicit force_refresh(), never on an errcode.
return {
  name = "stable_token",
  product = "mp",
  method = "POST",
  path = "/cgi-bin/stable_token",
  json = { grant_type = "client_credential", appid = "$appid", secret = "$secret", force_refresh = "$force" },
  required = { "appid", "secret" },
  token_field = "access_token",
  ids = { "appid" },
  secrets = { "secret" },
  force_limits = { per_day = 20, spacing = 30 },
}
