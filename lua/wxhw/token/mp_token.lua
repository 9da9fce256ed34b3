--- Mini Program / Official Account `GET /cgi-bin/token`
-- (developers.weixin.qq.com/doc/oplatform/developers/dev/AccessToken.html).
-- Every fetch rotates the token (the old one lives 5 more minutes). The WMPF
-- host-app token is the same API with the mobile app's appid (source "wmpf";
-- the official tooling, wmpf_demo_external, fetches it so): keep it in a
-- store every process of the host shares (the default), or they void each
-- other's tokens.
return {
  name = "token",
  product = "mp",
  method = "GET",
  path = "/cgi-bin/token",
  query = { grant_type = "client_credential", appid = "$appid", secret = "$secret" },
  required = { "appid", "secret" },
  token_field = "access_token",
  ids = { "appid" },
  secrets = { "secret" },
  -- force_refresh just fetches again; spaced like stable_token so a loop cannot burn the quota
  force_limits = { per_day = 20, spacing = 30 },
}
