-- A token belongs to the back end that issued it (issue 14's class "state
-- from one back end reused against another"). The default token store is
-- shared by every process of the host: before the fix an emulator's or a
-- test server's token was handed to a client of another back end with the
-- same appid and secret (every call 40001), and the other way round a
-- production token was sent to the test server.
local http_server = require "support.http_server"
local files = require "support.files"
local token = require "wxhw.token"

local function token_server(tok)
  return http_server.raw{ ["*"] = { body = ('{"access_token":"%s","expires_in":7200}'):format(tok) } }
end

describe("token store keys name the back end", function()
  local a, b, dir
  setup(function()
    a, b = token_server("TOKEN-OF-A"), token_server("TOKEN-OF-B")
    dir = files.tmpdir()
  end)
  teardown(function()
    a:stop(); b:stop()
    files.sh("rm -rf " .. files.quote(dir))
  end)

  local function manager(base_url, path)
    return assert(token.new{ source = "token", appid = "wx0123456789abcdef", secret = "s3cret", base_url = base_url,
                             store = "shm", store_path = dir .. "/" .. path })
  end

  it("two back ends with one appid and secret share no token through one store", function()
    local ma, mb = manager(a.base_url, "tokens"), manager(b.base_url, "tokens")
    assert.equal("TOKEN-OF-A", ma:token())
    assert.equal("TOKEN-OF-B", mb:token())
    assert.not_equal(ma.key, mb.key)
  end)

  it("the production key is unchanged (hosts of two versions keep sharing one token)", function()
    local m = assert(token.new{ source = "token", appid = "wx0123456789abcdef", secret = "s3cret",
                                store = "memory" })
    local explicit = assert(token.new{ source = "token", appid = "wx0123456789abcdef", secret = "s3cret",
                                       base_url = "https://api.weixin.qq.com", store = "memory" })
    assert.matches("^wxhw:token:wx0123456789abcdef:%x+$", m.key)
    assert.equal(m.key, explicit.key)
  end)
end)
