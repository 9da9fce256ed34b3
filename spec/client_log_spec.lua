-- The client's default log line (log = true or WXHW_LOG=1) prints numbers
-- from JSON as integers: under Lua 5.4 an errcode decoded from JSON is a
-- float and printed "errcode=40001.0" (issue 14's integer printing, next
-- instance after the manifest and the provision summary).
local http_server = require "support.http_server"
local procs = require "support.token_procs"

describe("client default log", function()
  it("prints an errcode from JSON as an integer", function()
    local raw = http_server.raw{ ["*"] = { body = '{"errcode":40001,"errmsg":"invalid credential"}' } }
    finally(function() raw:stop() end)
    local p = procs.spawn([[
      local c = assert(require("wxhw.client").new{ base_urls = { mp = arg[1] }, retry = { attempts = 1 }, log = true })
      c:call{ product = "mp", method = "POST", path = "/wxa/getsnticket", query = { access_token = "T" }, json = {} }
    ]], raw.base_url)
    local out = p.wait()
    assert.matches("wxhw response POST /wxa/getsnticket status=200 errcode=40001 ", out, 1, true)
    assert.not_matches("errcode=40001%.0", out)
  end)
end)
