--- Test key material for the emulated WeChat Pay: the merchant's API key pair
-- and certificate, the platform certificate key, and the "WeChat Pay public
-- key" (PUB_KEY_ID_ mode) key. Made once per seed with the OpenSSL CLI and
-- reused from the keys directory (generation is random; reuse keeps a seed's
-- keys stable across runs on one machine). The CLI runs without a shell
-- (wxhw.fileio's posix_spawn); directories are made and removed in process.
local fileio = require "wxhw.fileio"
local proc = fileio.proc

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

-- Runs the openssl CLI with argv (no shell, output discarded).
local function openssl(argv)
  table.insert(argv, 1, "openssl")
  local pid, err = proc.spawn(argv, { stdin = "null", stdout = "null", stderr = "null" })
  local how, code
  if pid then how, code = proc.wait(pid) end
  if how ~= "exit" or code ~= 0 then
    error("key generation failed: " .. table.concat(argv, " ") .. (err and (": " .. tostring(err)) or ""), 0)
  end
end

local function private_dir(path)
  local ok, err = fileio.mkdir_p(path, "700")
  if not ok then error("key generation failed: " .. tostring(err), 0) end
  assert(fileio.chmod(path, "700"))
end

-- A directory of the files named in FILES (or the given names) and nothing else.
local function remove_dir(path, names)
  for _, f in ipairs(names or FILES) do os.remove(path .. "/" .. f) end
  os.remove(path)
end

local function self_signed(key, crt, cn, ser)
  openssl{ "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt, "-days", "3650",
           "-subj", "/C=CN/O=wxhw emulator/CN=" .. cn, "-set_serial", "0x" .. ser }
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
    private_dir(tmp)
    local ms, ps = serial(rng), serial(rng)
    self_signed(tmp .. "/merchant_key.pem", tmp .. "/merchant_cert.pem", "1900000001 (seed " .. seed .. ")", ms)
    self_signed(tmp .. "/platform_key.pem", tmp .. "/platform_cert.pem",
                "Tenpay.com Root CA emulated (seed " .. seed .. ")", ps)
    openssl{ "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", tmp .. "/pubkey_key.pem" }
    openssl{ "pkey", "-in", tmp .. "/pubkey_key.pem", "-pubout", "-out", tmp .. "/pubkey_public.pem" }
    assert(fileio.mkdir_p(dir:match("^(.*)/[^/]*$") or "."))
    -- Another emulator may have won the race; then use its keys.
    if not os.rename(tmp, dir) then
      if not complete(dir) then
        private_dir(dir)
        for _, f in ipairs(FILES) do os.rename(tmp .. "/" .. f, dir .. "/" .. f) end
      end
      remove_dir(tmp)
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
  private_dir(tmp)
  local ok, err = pcall(self_signed, tmp .. "/k.pem", tmp .. "/c.pem", label, serial(rng))
  local key, cert
  if ok then key, cert = read(tmp .. "/k.pem"), read(tmp .. "/c.pem") end
  remove_dir(tmp, { "k.pem", "c.pem" })
  if not ok then error(err, 0) end
  return key, cert
end

function M.default_dir(seed)
  local base = os.getenv("TMPDIR") or "/tmp"
  local user = os.getenv("USER") or "user"
  return base .. "/wxhw-emulator-keys-" .. user .. "-seed" .. tostring(seed)
end

return M
