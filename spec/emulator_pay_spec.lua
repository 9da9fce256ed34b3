-- The emulated WeChat Pay APIv3, checked against an independent peer: Python
-- `cryptography` signs the requests, verifies the response signatures and
-- decrypts /v3/certificates. The emulator is driven with plain HTTP.
local emulator = require "support.emulator"
local cjson = require "cjson"
local socket = require "socket"
local periods = require "support.quota_periods"

-- One Python process per batch of jobs keeps the spec fast.
local PEER = [[
import sys, json, base64, time, secrets, string
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography import x509
def load_pub(path):
    data = open(path, 'rb').read()
    if b'CERTIFICATE' in data:
        return x509.load_pem_x509_certificate(data).public_key()
    return serialization.load_pem_public_key(data)
out = []
for job in json.load(sys.stdin):
    if job['op'] == 'auth':
        key = serialization.load_pem_private_key(open(job['key'], 'rb').read(), None)
        ts = str(job.get('ts') or int(time.time()))
        nonce = ''.join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
        msg = '%s\n%s\n%s\n%s\n%s\n' % (job['method'], job['url'], ts, nonce, job.get('body', ''))
        sig = base64.b64encode(key.sign(msg.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()
        out.append('WECHATPAY2-SHA256-RSA2048 mchid="%s",nonce_str="%s",timestamp="%s",serial_no="%s",signature="%s"'
                   % (job['mchid'], nonce, ts, job['serial'], sig))
    elif job['op'] == 'verify':
        msg = '%s\n%s\n%s\n' % (job['ts'], job['nonce'], job['body'])
        try:
            load_pub(job['pem']).verify(base64.b64decode(job['sig']), msg.encode(), padding.PKCS1v15(), hashes.SHA256())
            out.append(True)
        except Exception:
            out.append(False)
    elif job['op'] == 'decrypt':
        pt = AESGCM(job['key'].encode()).decrypt(job['nonce'].encode(), base64.b64decode(job['ct']), job['aad'].encode())
        out.append(pt.decode())
print(json.dumps(out))
]]

local function peer(jobs)
  local script = os.tmpname()
  local input = os.tmpname()
  local f = io.open(script, "w"); f:write(PEER); f:close()
  f = io.open(input, "w"); f:write(cjson.encode(jobs)); f:close()
  local p = io.popen("python3 " .. script .. " < " .. input)
  local out = p:read("*a"); p:close()
  os.remove(script); os.remove(input)
  return cjson.decode(out)
end

local function read(p) local f = assert(io.open(p)); local s = f:read("*a"); f:close(); return s end

describe("emulator WeChat Pay", function()
  local e, pay
  setup(function()
    e = emulator.start{ seed = 21, iot_devices = 100000 }
    pay = e.credentials.pay
  end)
  teardown(function() if e then e.stop() end end)
  before_each(function() e.control("/__emulator/reset", {}) end)

  local function auth_job(method, url, body, over)
    local j = { op = "auth", method = method, url = url, body = body or "", key = pay.merchant_private_key_path,
      serial = pay.merchant_serial_no, mchid = pay.mchid }
    for k, v in pairs(over or {}) do j[k] = v end
    return j
  end
  local function get(url, authorization, extra)
    local h = { ["User-Agent"] = "wxhw-spec", Accept = "application/json" }
    if authorization then h.Authorization = authorization end
    for k, v in pairs(extra or {}) do h[k] = v end
    local status, body, headers = e.request("GET", url, nil, h)
    return status, body, headers
  end
  local function verify_job(headers, body, pem)
    return { op = "verify", ts = headers["wechatpay-timestamp"], nonce = headers["wechatpay-nonce"],
      sig = headers["wechatpay-signature"], body = body, pem = pem }
  end

  it("answers 401 SIGN_ERROR without a valid Authorization, and signs that answer", function()
    local s, body, h = get("/v3/certificates")
    assert.equal(401, s)
    assert.equal("SIGN_ERROR", cjson.decode(body).code)
    assert.equal(pay.platform_serial_no, h["wechatpay-serial"])
    assert.same({ true }, peer{ verify_job(h, body, pay.platform_certificate_path) })
  end)

  it("serves /v3/certificates encrypted with the APIv3 key", function()
    local a = peer{ auth_job("GET", "/v3/certificates") }
    local s, body, h = get("/v3/certificates", a[1])
    assert.equal(200, s)
    local d = cjson.decode(body).data[1]
    assert.equal(pay.platform_serial_no, d.serial_no)
    assert.equal("AEAD_AES_256_GCM", d.encrypt_certificate.algorithm)
    assert.equal(12, #d.encrypt_certificate.nonce)
    local r = peer{ verify_job(h, body, pay.platform_certificate_path),
      { op = "decrypt", key = pay.apiv3_key, nonce = d.encrypt_certificate.nonce,
        aad = d.encrypt_certificate.associated_data, ct = d.encrypt_certificate.ciphertext } }
    assert.is_true(r[1])
    assert.equal(read(pay.platform_certificate_path), r[2])
  end)

  it("rejects wrong serial, wrong mchid, stale timestamps, tampered bodies and missing User-Agent", function()
    local now = os.time()
    local a = peer{
      auth_job("GET", "/v3/certificates", "", { serial = "ABCDEF" }),
      auth_job("GET", "/v3/certificates", "", { mchid = "1900000002" }),
      auth_job("GET", "/v3/certificates", "", { ts = now - 400 }),
      auth_job("GET", "/v3/certificates?x=1"),
      auth_job("GET", "/v3/certificates", "", { ts = now - 250 }),
    }
    for i = 1, 4 do
      local s, body = get("/v3/certificates", a[i])
      assert.equal(401, s, "case " .. i)
      assert.equal("SIGN_ERROR", cjson.decode(body).code)
    end
    assert.equal(200, (get("/v3/certificates", a[5])))
    local s = e.request("GET", "/v3/certificates", nil, { Authorization = a[5], ["user-agent"] = "" })
    assert.equal(400, s)
  end)

  it("pages the seeded fleet with offset/limit, total_count and links", function()
    local urls = { "/v3/iotmanage/devices?offset=0&limit=100", "/v3/iotmanage/devices?offset=99950&limit=100",
      "/v3/iotmanage/devices?offset=0&limit=101", "/v3/iotmanage/devices?limit=10",
      "/v3/iotmanage/devices?offset=-1&limit=10" }
    local jobs = {}
    for i, u in ipairs(urls) do jobs[i] = auth_job("GET", u) end
    local a = peer(jobs)
    local s, body, h = get(urls[1], a[1])
    assert.equal(200, s)
    local page = cjson.decode(body)
    assert.equal(100, #page.data)
    assert.equal(100000, page.total_count)
    assert.equal("/v3/iotmanage/devices?offset=100&limit=100", page.links.next)
    assert.equal("", page.links.prev)
    local dev = page.data[1]
    assert.is_string(dev.device_category_code)
    assert.is_true(dev.activation_status == "ACTIVATED" or dev.activation_status == "INACTIVATED")
    assert.equal(pay.mchid, dev.mchid)
    local seen = {}
    for _, d in ipairs(page.data) do assert.is_nil(seen[d.device_sn]); seen[d.device_sn] = true end
    assert.same({ true }, peer{ verify_job(h, body, pay.platform_certificate_path) })
    s, body = get(urls[2], a[2])
    page = cjson.decode(body)
    assert.equal(50, #page.data)
    assert.equal("", page.links.next)
    for i = 3, 5 do
      s, body = get(urls[i], a[i])
      assert.equal(400, s)
      assert.equal("PARAM_ERROR", cjson.decode(body).code)
    end
    -- the same device comes back by index on another emulator with this seed
    assert.same(dev, e.control("/__emulator/pay/device?index=1"))
  end)

  it("limits /v3/iotmanage/devices to 20 requests a second", function()
    -- The window is the emulator's clock second (the same host clock). Start
    -- early in a second; a burst that a loaded machine (ASan, valgrind) spread
    -- over a second boundary proves nothing either way, so it is run again.
    local statuses
    for _ = 1, 5 do
      socket.sleep(1.01 - socket.gettime() % 1)
      statuses = {}
      local t0 = socket.gettime()
      for i = 1, 25 do statuses[i] = (get("/v3/iotmanage/devices?offset=0&limit=1")) end
      if math.floor(socket.gettime()) == math.floor(t0) then break end
      statuses = nil
    end
    assert.is_table(statuses, "no burst of 25 requests fitted in one second in 5 tries")
    for i = 1, 20 do assert.equal(401, statuses[i]) end
    for i = 21, 25 do assert.equal(429, statuses[i]) end
    socket.sleep(1.05 - socket.gettime() % 1)
    assert.equal(401, (get("/v3/iotmanage/devices?offset=0&limit=1")))
  end)

  it("answers FREQUENCY_LIMITED over the daily quota", function()
    periods.clear_of_midnight(30)
    e.control("/__emulator/pay/config", { daily_limit = 2 })
    local u = "/v3/iotmanage/devices?offset=0&limit=1"
    local a = peer{ auth_job("GET", u), auth_job("GET", u), auth_job("GET", u) }
    assert.equal(200, (get(u, a[1])))
    assert.equal(200, (get(u, a[2])))
    local s, body = get(u, a[3])
    assert.equal(429, s)
    assert.equal("FREQUENCY_LIMITED", cjson.decode(body).code)
  end)

  it("signs in PUB_KEY_ID_ mode when the client asks for it", function()
    local a = peer{ auth_job("GET", "/v3/iotmanage/devices?offset=0&limit=1") }
    local s, body, h = get("/v3/iotmanage/devices?offset=0&limit=1", a[1], { ["Wechatpay-Serial"] = pay.public_key_id })
    assert.equal(200, s)
    assert.equal(pay.public_key_id, h["wechatpay-serial"])
    assert.same({ true, false }, peer{ verify_job(h, body, pay.platform_public_key_path),
      verify_job(h, body, pay.platform_certificate_path) })
  end)

  it("injects wrong response signatures and SIGNTEST probes", function()
    local u = "/v3/iotmanage/devices?offset=0&limit=1"
    local a = peer{ auth_job("GET", u), auth_job("GET", u), auth_job("GET", u) }
    e.control("/__emulator/faults", { path = "/v3/iotmanage/devices", count = 1, bad_signature = true })
    e.control("/__emulator/faults", { path = "/v3/iotmanage/devices", skip = 0, count = 1, signtest = true })
    local s1, b1, h1 = get(u, a[1])
    local s2, _, h2 = get(u, a[2])
    local s3, b3, h3 = get(u, a[3])
    assert.equal(200, s1); assert.equal(200, s2); assert.equal(200, s3)
    assert.truthy(h2["wechatpay-signature"]:find("^WECHATPAY/SIGNTEST/"))
    assert.same({ false, true }, peer{ verify_job(h1, b1, pay.platform_certificate_path),
      verify_job(h3, b3, pay.platform_certificate_path) })
  end)

  it("injects 429 and 5xx with a Pay error body", function()
    local u = "/v3/iotmanage/devices?offset=0&limit=1"
    e.control("/__emulator/faults", { path = "/v3/*", count = 1, http_status = 500 })
    local s, body = get(u)
    assert.equal(500, s)
    assert.equal("SYSTEM_ERROR", cjson.decode(body).code)
  end)

  it("returns factory inspections for fleet devices only", function()
    local sn = e.control("/__emulator/pay/device?index=42").device_sn
    local u = "/v3/iotmanage/device-inspections/" .. sn
    local bad = "/v3/iotmanage/device-inspections/NOSUCHDEVICE"
    local a = peer{ auth_job("GET", u), auth_job("GET", bad) }
    local s, body = get(u, a[1])
    assert.equal(200, s)
    local r = cjson.decode(body)
    assert.equal(sn, r.device_sn)
    assert.truthy(({ SUCCESS = 1, WARN = 1, FAIL = 1 })[r.result])
    assert.equal(404, (get(bad, a[2])))
    -- device_sn is 5-200 letters and digits (device-inspections doc): 400 PARAM_ERROR otherwise
    local malformed = { "/v3/iotmanage/device-inspections/ABCD", "/v3/iotmanage/device-inspections/EMU_00000042",
                        "/v3/iotmanage/device-inspections/" .. ("A"):rep(201) }
    local jobs = {}
    for i, p in ipairs(malformed) do jobs[i] = auth_job("GET", p) end
    local auths = peer(jobs)
    for i, p in ipairs(malformed) do
      local st, b = get(p, auths[i])
      assert.equal(400, st, p)
      assert.equal("PARAM_ERROR", cjson.decode(b).code)
    end
  end)

  it("rotates the platform certificate on request", function()
    local r = e.control("/__emulator/pay/rotate_certificate", {})
    assert.not_equal(pay.platform_serial_no, r.serial_no)
    assert.equal(2, #r.serials)
    local pem = os.tmpname()
    local f = io.open(pem, "w"); f:write(r.platform_certificate); f:close()
    local a = peer{ auth_job("GET", "/v3/certificates"), auth_job("GET", "/v3/certificates") }
    local s, body, h = get("/v3/certificates", a[1])
    assert.equal(200, s)
    assert.equal(r.serial_no, h["wechatpay-serial"])
    local data = cjson.decode(body).data
    assert.equal(2, #data)
    assert.equal(r.serial_no, data[1].serial_no)
    assert.same({ true, false }, peer{ verify_job(h, body, pem), verify_job(h, body, pay.platform_certificate_path) })
    os.remove(pem)
    e.control("/__emulator/pay/rotate_certificate", { drop_old = true })
    s, body = get("/v3/certificates", a[2])
    assert.equal(1, #cjson.decode(body).data)
    e.control("/__emulator/reset", {})
    assert.equal(pay.platform_serial_no, e.control("/__emulator/credentials").pay.platform_serial_no)
  end)

  it("signs request headers for curl users via the control API", function()
    local h = e.control("/__emulator/pay/authorization", { method = "GET", url = "/v3/certificates" }).authorization
    assert.equal(200, (get("/v3/certificates", h)))
  end)
end)
