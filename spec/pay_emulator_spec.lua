-- wxhw.pay against the wxhw emulator, which verifies every request's
-- Authorization and signs every answer: certificate and public-key modes,
-- the IoT device listing (matched against the emulator's own fleet), the
-- fault matrix, local limits and certificate refresh without a storm.
local pay_mod = require "wxhw.pay"
local http = require "wxhw.http"
local errors = require "wxhw.errors"
local emulator = require "support.emulator"
local cjson = require "cjson"
local socket = require "socket"
local periods = require "support.quota_periods"

local FLEET = os.getenv("WXHW_RUNTIME") == "luajit" and 2000 or 20000

describe("wxhw.pay against the emulator", function()
  local e, c
  setup(function()
    e = emulator.start{ seed = 11, iot_devices = FLEET }
    c = e.credentials.pay
  end)
  teardown(function() if e then e.stop() end end)
  before_each(function()
    e.control("/__emulator/faults", nil, "DELETE")
    e.control("/__emulator/pay/config", { mode = "certificate", skew = 0 })
  end)

  local function new(over)
    local o = { mchid = c.mchid, serial_no = c.merchant_serial_no, private_key = c.merchant_private_key,
      apiv3_key = c.apiv3_key, base_url = e.base_url, retry = { base_delay = 0.05 } }
    for k, v in pairs(over or {}) do o[k] = v end
    return assert(pay_mod.new(o))
  end

  local function statuses(p)
    local seen = {}
    p.client:hook("on_response", function(i) seen[#seen + 1] = i.status or "error" end)
    return seen
  end

  local function count(list, v)
    local n = 0
    for _, x in ipairs(list) do if x == v then n = n + 1 end end
    return n
  end

  local function fault(f) return e.control("/__emulator/faults", f) end

  -- The emulator's 20 QPS window is per caller IP and calendar second: a
  -- test that must see no 429 starts in a second no earlier test has used.
  local clock = require "wxhw.clock"
  local function fresh_second() clock.sleep(1.02 - clock.now() % 1) end

  -- The emulator's fleet, device by device, over its control API.
  local function emulator_fleet(n)
    local h = assert(http.new{ timeout = 10 })
    local reqs = {}
    for i = 1, n do reqs[i] = { url = e.base_url .. "/__emulator/pay/device?index=" .. i } end
    local out = {}
    for i, r in ipairs(h:batch(reqs, { concurrency = 8 })) do
      assert(not errors.is(r), tostring(r))
      out[i] = cjson.decode(r.body)
    end
    h:close()
    return out
  end

  it("lists the seeded fleet exactly, codes kept and names decoded, with no 429 #slow", function()
    fresh_second()
    local p = new()
    local seen = statuses(p)
    local got, t0 = {}, socket.gettime()
    for d, err in p:iot_devices{ limit = 100 } do
      assert(d ~= false, tostring(err))
      got[#got + 1] = d
    end
    local elapsed = socket.gettime() - t0
    assert.equal(FLEET, #got)
    assert.equal(0, count(seen, 429))
    assert.equal(FLEET / 100 + 1, #seen) -- the pages plus one certificate download
    -- 20 QPS bound: 200 pages take at least 9.9 s
    assert.is_true(elapsed >= (FLEET / 100 - 1) / 20, "faster than 20 QPS: " .. elapsed)
    local want = emulator_fleet(FLEET)
    for i, w in ipairs(want) do
      local d = got[i]
      for k, v in pairs(w) do assert.equal(v, d[k], "device " .. i .. " field " .. k) end
      assert.equal(pay_mod.iot.categories[tonumber(w.device_category_code)], d.category_name)
      assert.equal(w.device_category, d.category_name) -- the emulator's names agree with the seed tables
      assert.equal(w.device_class, d.class_name)
      assert.equal(w.app_scene, d.app_scene_name)
      assert.equal(w.activation_status == "ACTIVATED", d.activated)
    end
  end)

  it("works in public-key mode (PUB_KEY_ID_) without downloading certificates", function()
    e.control("/__emulator/counters/reset", {})
    local p = new{ platform_public_key = c.platform_public_key, platform_public_key_id = c.public_key_id }
    local all = assert(select(2, p:iot_devices{ limit = 50, offset = FLEET - 500 }):collect())
    assert.equal(500, #all)
    assert.equal(string.format("EMU%08d", FLEET), all[500].device_sn:sub(1, 11))
    local counters = e.control("/__emulator/counters")
    assert.is_nil(counters.endpoints["/v3/certificates"])
  end)

  it("lists concurrently within the rate limit", function()
    fresh_second()
    local p = new()
    local seen = statuses(p)
    local _, pager = p:iot_devices{ limit = 100, offset = FLEET - 1500, concurrency = 4 }
    local all = assert(pager:collect())
    assert.equal(1500, #all)
    assert.equal(string.format("EMU%08d", FLEET - 1499), all[1].device_sn:sub(1, 11))
    assert.equal(string.format("EMU%08d", FLEET), all[1500].device_sn:sub(1, 11))
    assert.equal(0, count(seen, 429))
  end)

  describe("fault matrix", function()
    local function list_small(p)
      return select(2, p:iot_devices{ limit = 100, offset = FLEET - 250 }):collect()
    end

    it("429 and SYSTEM_ERROR are retried with backoff to the right result", function()
      for _, st in ipairs({ 429, 500, 502 }) do
        -- each fresh client may burst: start where earlier requests cannot
        -- push it into a real 429
        fresh_second()
        local p = new()
        assert.truthy(p:request{ path = "/v3/certificates" }) -- warm: faults hit the listing only
        local seen = statuses(p)
        fault{ path = "/v3/iotmanage/devices", skip = 1, count = 1, http_status = st, retry_after = 0 }
        local all = assert(list_small(p))
        assert.equal(250, #all)
        assert.equal(1, count(seen, st))
        e.control("/__emulator/faults", nil, "DELETE")
      end
    end)

    it("a lasting SYSTEM_ERROR ends in the API's named error", function()
      local p = new{ retry = { attempts = 3, base_delay = 0.01 } }
      fault{ path = "/v3/iotmanage/devices", http_status = 500 }
      local all, err = list_small(p)
      assert.is_nil(all)
      assert.equal("pay", err.kind)
      assert.equal("SYSTEM_ERROR", err.errcode)
      assert.equal(500, err.http_status)
      assert.equal(3, err.attempts)
      assert.truthy(err.request_id)
    end)

    it("PARAM_ERROR is never retried", function()
      local p = new()
      assert.truthy(p:request{ path = "/v3/certificates" })
      local seen = statuses(p)
      fault{ path = "/v3/iotmanage/devices", http_status = 400 }
      local all, err = list_small(p)
      assert.is_nil(all)
      assert.equal("PARAM_ERROR", err.errcode)
      assert.equal(1, #seen)
    end)

    it("a truncated body or a reset connection is fetched again", function()
      for _, f in ipairs({ { truncate = true }, { reset = true } }) do
        local p = new()
        f.path, f.skip, f.count = "/v3/iotmanage/devices", 1, 1
        fault(f)
        local all = assert(list_small(p))
        assert.equal(250, #all)
        e.control("/__emulator/faults", nil, "DELETE")
      end
    end)

    it("a bad signature and a SIGNTEST probe are named errors", function()
      for flag, reason in pairs({ bad_signature = "bad_signature", signtest = "probe" }) do
        local p = new()
        fault{ path = "/v3/iotmanage/devices", [flag] = true, count = 1 }
        local all, err = list_small(p)
        assert.is_nil(all)
        assert.equal("signature", err.kind)
        assert.equal(reason, err.reason)
        assert.equal(200, err.http_status)
        e.control("/__emulator/faults", nil, "DELETE")
      end
    end)

    it("clock skew: within 300 s works, beyond it the server's refusal is reported", function()
      local p = new()
      e.control("/__emulator/pay/config", { skew = 200 })
      assert.equal(250, #assert(list_small(p)))
      e.control("/__emulator/pay/config", { skew = -200 })
      assert.equal(250, #assert(list_small(p)))
      e.control("/__emulator/pay/config", { skew = 900 })
      local seen = statuses(p)
      local all, err = list_small(p)
      assert.is_nil(all)
      assert.equal("pay", err.kind)
      assert.equal(401, err.http_status)
      assert.equal("SIGN_ERROR", err.errcode)
      assert.equal(1, #seen)
    end)

    it("an error answer without signature headers is reported as the API error", function()
      local p = new()
      assert.truthy(p:request{ path = "/v3/certificates" })
      fault{ path = "/v3/iotmanage/devices", http_status = 503, body = "<html>busy</html>" }
      local all, err = select(2, p:iot_devices{ limit = 10 }):collect()
      assert.is_nil(all)
      assert.equal("pay", err.kind)
      assert.equal(503, err.http_status)
    end)
  end)

  describe("local checks", function()
    it("refuses limit > 100 and a negative offset before sending", function()
      local p = new()
      local seen = statuses(p)
      for _, o in ipairs({ { limit = 101 }, { limit = 0 }, { offset = -1 }, { limit = 10.5 } }) do
        local n, item, err = 0, nil, nil
        for d, e2 in p:iot_devices(o) do n = n + 1; item, err = d, e2 end
        assert.equal(1, n)
        assert.is_false(item)
        assert.equal("input", err.kind)
      end
      assert.equal(0, #seen)
      local pager, err = p:iot_devices_pager{ limit = 500 }
      assert.is_nil(pager)
      assert.matches("maximum of 100", err.message)
    end)

    it("counts the daily quota and refuses locally once it is spent", function()
      periods.clear_of_midnight(30)
      local p = new{ daily_quota = 3 }
      local seen = statuses(p)
      local all, err = select(2, p:iot_devices{ limit = 100, offset = FLEET - 500 }):collect()
      assert.is_nil(all)
      assert.equal("quota", err.kind)
      assert.equal("daily", err.reason)
      -- three requests were sent after the certificate download; the quota
      -- counts requests, so a page the emulator refused (its per-IP QPS
      -- window is shared with earlier tests) and that was retried used one
      assert.equal(3, #seen - 1)
      local pages = count(seen, 200) - 1
      assert.is_true(pages >= 2, table.concat(seen, " "))
      assert.equal(100 * pages, #err.partial)
    end)

    it("device inspection: a real device, an unknown one, a malformed sn", function()
      local p = new()
      local d = assert(p:request{ path = "/v3/iotmanage/devices", query = { limit = 1, offset = 7 } }).data[1]
      local r = assert(p:device_inspection(d.device_sn))
      assert.equal(d.device_sn, r.device_sn)
      assert.truthy(({ SUCCESS = 1, WARN = 1, FAIL = 1 })[r.result])
      local _, err = p:device_inspection("EMU99999999ZZZZZZZZ")
      assert.equal("RESOURCE_NOT_EXISTS", err.errcode)
      local _, err2 = p:device_inspection("../certificates")
      assert.equal("input", err2.kind)
      -- 5-200 letters and digits (device-inspections doc): checked before sending
      for _, sn in ipairs{ "ABCD", ("A"):rep(201), "SN_00001", "SN-00001", "" } do
        local _, serr = p:device_inspection(sn)
        assert.equal("input", serr.kind, sn)
        assert.equal("device_sn must be 5-200 letters and digits", serr.message)
      end
      for _, sn in ipairs{ "ABCDE", ("A"):rep(200) } do -- in range: sent, and unknown to the fleet
        local _, serr = p:device_inspection(sn)
        assert.equal("RESOURCE_NOT_EXISTS", serr.errcode, sn)
      end
    end)

    it("a mismatched merchant serial is refused by the server, not retried", function()
      local p = new{ serial_no = "ABCDEF0123456789" }
      local seen = statuses(p)
      local _, err = p:request{ path = "/v3/certificates" }
      assert.equal(401, err.http_status)
      assert.equal("SIGN_ERROR", err.errcode)
      assert.equal(1, #seen)
    end)
  end)

  describe("platform certificates", function()
    it("refreshes once on an unknown serial, then never storms", function()
      -- configured with a certificate WeChat no longer uses
      local old = io.open(c.merchant_certificate_path):read("*a")
      local rotations = {}
      local p = new{ platform_certificates = { old }, on_cert_rotate = function(i) rotations[#rotations + 1] = i end }
      e.control("/__emulator/counters/reset", {})
      assert.truthy(p:request{ path = "/v3/iotmanage/devices", query = { limit = 1, offset = 0 } })
      assert.equal(1, #rotations)
      assert.equal(c.platform_serial_no, rotations[1].after)
      -- answers under serials nobody knows: one refresh per interval at most
      local body = '{"x":1}'
      for _ = 1, 20 do
        local ok, err = p:verify({ ["Wechatpay-Timestamp"] = tostring(os.time()), ["Wechatpay-Nonce"] = "n",
          ["Wechatpay-Signature"] = "AAAA", ["Wechatpay-Serial"] = "0123456789ABCDEF" }, body)
        assert.is_nil(ok)
        assert.equal("unknown_serial", err.reason)
      end
      local counters = e.control("/__emulator/counters")
      assert.equal(1, counters.endpoints["/v3/certificates"])
    end)

    it("refuses a download whose GCM tag fails (wrong APIv3 key)", function()
      local p = new{ apiv3_key = string.rep("x", 32) }
      local _, err = p:request{ path = "/v3/iotmanage/devices", query = { limit = 1, offset = 0 } }
      assert.equal("gcm_tag", err.reason)
    end)

    it("downloads again when the set is old", function()
      local now = os.time()
      local p = new{ now = function() return now end, cert_max_age = 3600 }
      -- A frozen client clock cannot pace itself: start in a fresh second of the
      -- emulator's 20 QPS window so earlier specs' requests do not count here.
      require("wxhw.clock").sleep(1.05)
      e.control("/__emulator/counters/reset", {})
      assert.truthy(p:request{ path = "/v3/iotmanage/devices", query = { limit = 1, offset = 0 } })
      assert.truthy(p:request{ path = "/v3/iotmanage/devices", query = { limit = 1, offset = 0 } })
      assert.equal(1, e.control("/__emulator/counters").endpoints["/v3/certificates"])
      now = now + 3601
      e.control("/__emulator/pay/config", { skew = 3601 })
      assert.truthy(p:request{ path = "/v3/iotmanage/devices", query = { limit = 1, offset = 0 } })
      assert.equal(2, e.control("/__emulator/counters").endpoints["/v3/certificates"])
    end)
  end)
end)
