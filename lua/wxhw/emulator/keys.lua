--- Test key material for the emulated WeChat Pay: the merchant's API key pair
-- and certificate, the platform certificate key, and the "WeChat Pay public
-- key" (PUB_KEY_ID_ mode) key. Made once per seed with the OpenSSL CLI and
-- reused from the keys directory (generation is random; reuse keeps a seed's
-- keys stable across runs on one machine).
local M = {}

local FILES = { "merchant_key.pem", "merchant_cert.pem", "platform_key.pem", "platform_cert.pem",
  "pubkey_key.pem", "pubkey_public.pem" }

local function exists(p)
  local f = io.open(p, "r")
  if f then f:close(); return true end
  return false
end

local function read(p)
  local f = assert(io.open(p, "r"))
  local s = f:read("a"); f:close()
  return s
end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function run(cmd)
  local ok = os.execute(cmd .. " >/dev/null 2>&1")
  if not ok then error("key generation failed: " .. cmd, 0) end
end

local function complete(dir)
  for _, f in ipairs(FILES) do if not exists(dir .. "/" .. f) then return false end end
  return true
end

--- Serial numbers derived from the seed: 40 uppercase hex digits, no leading zero.
local function serial(rng)
  return ("%X"):format(rng:int(1, 15)) .. rng:hex(39):upper()
end

--- Returns { dir, merchant_key, merchant_cert, platform_key, platform_cert,
-- pubkey_key, pubkey_public (PEM strings), paths = {...} }.
function M.load(dir, seed, rng)
  if not complete(dir) then
    local tmp = dir .. ".tmp" .. math.floor(os.clock() * 1e6) .. math.random(1, 1e9)
    run("mkdir -p " .. q(tmp) .. " && chmod 700 " .. q(tmp))
    local ms, ps = serial(rng), serial(rng)
    local function cert(key, crt, cn, ser)
      run("openssl req -x509 -newkey rsa:2048 -nodes -keyout " .. q(tmp .. "/" .. key) .. " -out " ..
        q(tmp .. "/" .. crt) .. " -days 3650 -subj " .. q("/C=CN/O=wxhw emulator/CN=" .. cn) ..
        " -set_serial 0x" .. ser)
    end
    cert("merchant_key.pem", "merchant_cert.pem", "1900000001 (seed " .. seed .. ")", ms)
    cert("platform_key.pem", "platform_cert.pem", "Tenpay.com Root CA emulated (seed " .. seed .. ")", ps)
    run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " .. q(tmp .. "/pubkey_key.pem"))
    run("openssl pkey -in " .. q(tmp .. "/pubkey_key.pem") .. " -pubout -out " .. q(tmp .. "/pubkey_public.pem"))
    run("mkdir -p " .. q(dir:match("^(.*)/[^/]*$") or "."))
    -- Another emulator may have won the race; then use its keys.
    if not os.rename(tmp, dir) then
      if not complete(dir) then
        run("mkdir -p " .. q(dir))
        for _, f in ipairs(FILES) do os.rename(tmp .. "/" .. f, dir .. "/" .. f) end
      end
      os.execute("rm -rf " .. q(tmp))
    end
  end
  local k = { dir = dir, paths = {} }
  for _, f in ipairs(FILES) do
    local name = f:gsub("%.pem$", "")
    k[name] = read(dir .. "/" .. f)
    k.paths[name] = dir .. "/" .. f
  end
  return k
end

--- A fresh platform key and certificate (for rotation), kept in memory only.
-- Returns key_pem, cert_pem.
function M.new_platform(rng, label)
  local tmp = os.tmpname()
  os.remove(tmp)
  run("mkdir -p " .. q(tmp) .. " && chmod 700 " .. q(tmp))
  local ok, err = pcall(run, "openssl req -x509 -newkey rsa:2048 -nodes -keyout " .. q(tmp .. "/k.pem") ..
    " -out " .. q(tmp .. "/c.pem") .. " -days 3650 -subj " .. q("/C=CN/O=wxhw emulator/CN=" .. label) ..
    " -set_serial 0x" .. serial(rng))
  local key, cert
  if ok then key, cert = read(tmp .. "/k.pem"), read(tmp .. "/c.pem") end
  os.execute("rm -rf " .. q(tmp))
  if not ok then error(err, 0) end
  return key, cert
end

function M.default_dir(seed)
  local base = os.getenv("TMPDIR") or "/tmp"
  local user = os.getenv("USER") or "user"
  return base .. "/wxhw-emulator-keys-" .. user .. "-seed" .. tostring(seed)
end

return M
