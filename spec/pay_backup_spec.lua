-- wxhw.pay with an explicit base_url (an emulator, a test back end) never
-- falls back to the production backup host: signed requests from a test
-- configuration must not leave for production. The "production backup" here
-- is a loopback listener put in client.BACKUP_URLS, so any attempt shows up
-- as a connection in its backlog; nothing leaves the machine.
local pay_mod = require "wxhw.pay"
local client_mod = require "wxhw.client"
local keys = require "support.pay_keys"
local nginx = require "support.nginx"
local socket = require "socket"

describe("wxhw.pay with an explicit base_url", function()
  local k, backup, saved
  setup(function()
    k = keys.make()
    backup = assert(socket.bind("127.0.0.1", 0))
    backup:settimeout(0)
    local _, port = backup:getsockname()
    saved = client_mod.BACKUP_URLS.pay
    client_mod.BACKUP_URLS.pay = "http://127.0.0.1:" .. port
  end)
  teardown(function()
    client_mod.BACKUP_URLS.pay = saved
    backup:close()
    k.cleanup()
  end)

  local function new(o)
    local base = { mchid = keys.MCHID, serial_no = keys.SERIAL, private_key = k.merchant_pem,
      apiv3_key = keys.APIV3, platform_public_key = k.pubkey_pem, platform_public_key_id = keys.PUB_KEY_ID,
      transport = { timeout = 1, connect_timeout = 1 }, retry = { base_delay = 0.01, max_delay = 0.02 } }
    for key, v in pairs(o) do base[key] = v end
    return assert(pay_mod.new(base))
  end

  -- Every connection the "backup host" received, with its request line.
  local function backup_hits()
    local hits = {}
    while true do
      local conn = backup:accept()
      if not conn then return hits end
      conn:settimeout(0.2)
      hits[#hits + 1] = conn:receive("*l") or "(connected)"
      conn:close()
    end
  end

  it("does not try the backup host when the configured host cannot be reached", function()
    local p = new{ base_url = "http://127.0.0.1:" .. nginx.dead_port() }
    local data, err = p:request{ method = "GET", path = "/v3/iotmanage/devices", query = { limit = "1" } }
    p:close()
    assert.same({}, backup_hits())
    assert.is_nil(data)
    assert.equal("connect", err.reason)
  end)

  it("a wxhw.client given a pay base_url directly does not inherit the backup either", function()
    local c = assert(client_mod.new{ base_urls = { pay = "http://127.0.0.1:" .. nginx.dead_port() },
      transport = { timeout = 1, connect_timeout = 1 }, retry = { attempts = 1 } })
    assert.is_nil(c.backup_urls.pay)
    local res, err = c:call{ product = "pay", method = "GET", path = "/v3/iotmanage/devices" }
    assert.same({}, backup_hits())
    assert.is_nil(res)
    assert.equal("connect", err.reason)
    -- an explicit backup is still honoured
    local c2 = assert(client_mod.new{ base_urls = { pay = "http://x.invalid" }, backup_urls = { pay = "http://y.invalid" } })
    assert.equal("http://y.invalid", c2.backup_urls.pay)
  end)

  it("still knows the production backup when no base_url is given", function()
    -- the default client keeps its backup table; only an explicit base_url turns it off
    local p = new{}
    assert.equal(client_mod.BACKUP_URLS.pay, p.client.backup_urls.pay)
    p:close()
  end)
end)
