--- Callback gateway: plain request handlers for what WeChat, WeCom and WeChat
-- Pay push to a vendor. Each constructor returns a function
--
--     handler(method, query, headers, raw_body) --> status, headers, body
--
-- that any server can call: the OpenResty adapter (wxhw.callback.ngx), the
-- small Lua 5.4 server (wxhw.httpserver), or a test. `query` is a table of
-- decoded query parameters, `headers` a table (any key case), `raw_body` the
-- exact bytes received (signatures are checked on them).
--
--   callback.mini_program{ token, encoding_aes_key, appid, handlers = {...} }
--   callback.wecom{ token, encoding_aes_key, receive_id, handlers = {...} }
--   callback.pay{ pay = wxhw.pay client, handler = function(notification) end }
--   callback.router{ ["/path"] = handler, ... }
--
-- See docs/callback.md for reply conventions and status codes.
local E = require "wxhw.callback.endpoint"
local url = require "wxhw.url"
local xml = require "wxhw.xml"

local M = {}

M.mini_program = require("wxhw.callback.mp").mini_program
local wecom = require "wxhw.callback.wecom"
M.wecom, M.wecom_deadlines = wecom.wecom, wecom.wecom_deadlines
M.pay = require("wxhw.callback.pay").pay

-- for servers and adapters (wxhw.callback.ngx, wxhw.httpserver, tests)
M.MAX_BODY = E.MAX_BODY
M.max_body, M.refused = E.max_body, E.refused
M.shared_content_type = E.shared_content_type
M.lazy_headers, M.takes_lazy_headers = E.lazy_headers, E.takes_lazy_headers
M.header = E.header
--- marks an on_event hook that cannot raise (called without pcall)
M.trusted_hook = E.trusted_hook
--- "a=1&b=%2F" --> { a = "1", b = "/" } (wxhw.url.parse_query).
M.parse_query = url.parse_query
--- flat XML both ways (wxhw.xml)
M.parse_xml, M.encode_xml = xml.parse, xml.encode

-- routing ---------------------------------------------------------------

--- routes: { ["/path"] = handler }. Returns handler(method, path, query,
-- headers, raw_body); unknown paths get 404.
function M.router(routes)
  return function(method, path, query, headers, raw_body)
    local fn = routes[path]
    if not fn then return 404, E.TEXT, "not found" end
    return fn(method, query, headers, raw_body)
  end
end

return M
