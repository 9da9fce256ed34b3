--- Contract: access tokens (sources per entry). Data only; see contract/init.lua.
local GRANT = { "grant_type", "string", req = true, enum = { "client_credential" }, err = 40002 }
local APPID = { "appid", "string", req = true, min = 1, err = 41002 }
local SECRET = { "secret", "string", req = true, min = 1, err = 41004 }
local TOKEN_OUT = { { "access_token", "string" }, { "expires_in", "integer" } }
local TOKEN_ERRCODES = {
  [-1] = "system error", [40001] = "invalid credential", [40002] = "invalid grant_type",
  [40013] = "invalid appid", [40125] = "invalid appsecret", [40164] = "caller IP not in the whitelist",
  [40243] = "AppSecret frozen", [41002] = "appid missing", [41004] = "appsecret missing",
  [45009] = "reach max api daily quota limit",
}

return {
  {
    method = "GET", path = "/cgi-bin/token",
    source = "https://developers.weixin.qq.com/miniprogram/dev/server/API/mp-access-token/api_getaccesstoken",
    query = { GRANT, APPID, SECRET },
    response = TOKEN_OUT, errcodes = TOKEN_ERRCODES,
    notes = { "45009 after 10 000 fetches a day: community reports only (no official figure); the figure is chosen",
      "a new fetch leaves the previous token valid 5 more minutes (official AccessToken.html)",
      "missing-parameter errcodes 41002/41004 and their order: chosen from the global code list" },
  },
  {
    method = "POST", path = "/cgi-bin/stable_token",
    source = "https://developers.weixin.qq.com/doc/service/api/base/api_getstableaccesstoken",
    body = { GRANT, APPID, SECRET, { "force_refresh", "boolean" } },
    response = TOKEN_OUT,
    errcodes = { [-1] = "system error", [40002] = "invalid grant_type", [40013] = "invalid appid",
      [40125] = "invalid appsecret", [41002] = "appid missing", [41004] = "appsecret missing",
      [43002] = "require POST method", [44002] = "empty post data", [45009] = "daily quota (500 000; force_refresh 20)",
      [45011] = "minute quota (10 000)", [47001] = "data format error" },
    notes = { "force_refresh less than 30 s after the previous one does not refresh (api_getstableaccesstoken; no errcode "
      .. "is documented for it)" },
  },
  {
    method = "GET", path = "/cgi-bin/gettoken",
    source = "https://developer.work.weixin.qq.com/document/path/91039",
    query = { { "corpid", "string", req = true, min = 1, err = 41002 },
              { "corpsecret", "string", req = true, min = 1, err = 41004 } },
    response = { { "errcode", "integer" }, { "errmsg", "string" }, { "access_token", "string" }, { "expires_in", "integer" } },
    errcodes = { [40001] = "invalid secret", [40013] = "invalid corpid", [41002] = "corpid missing",
      [41004] = "corpsecret missing", [45009] = "api freq out of limit" },
    notes = { "45009 after 600 fetches a minute: chosen (the page only says frequent calls are blocked)" },
  },
  {
    method = "POST", path = "/cgi-bin/clear_quota",
    token = { where = "query", param = "access_token", kinds = { mp = true, app = true }, says = "Mini Program or mobile app" },
    source = "https://developers.weixin.qq.com/doc/service/openApi/clear_quota.html",
    body = { { "appid", "string", req = true, min = 1 } },
    response = { { "errcode", "integer" }, { "errmsg", "string" } },
    errcodes = { [40013] = "invalid appid (not the account of the access_token)",
      [48006] = "forbid to clear quota because of reaching the limit (10 a month; not enforced)" },
    notes = { "resets only the emulator's /cgi-bin/token daily count" },
  },
}
