-- The OpenSSL command line as an independent peer for crypto specs.
local M = {}

local files = require "support.files"
local sh_quote = files.quote
M.quote, M.write, M.read = files.quote, files.write, files.read
function M.tmpdir() return files.tmpdir("wxhw-spec") end

--- Runs a shell command; returns ok (exit 0), stdout.
function M.run(cmd)
  local p = io.popen("(" .. cmd .. ") 2>/dev/null")
  local out = p:read("*a")
  local ok = p:close()
  return ok == true or ok == 0, out
end

function M.rmtree(dir)
  if dir and dir:match("^/tmp/wxhw%-spec%.") then os.execute("rm -rf " .. sh_quote(dir)) end
end

--- Generates keys with the CLI. kind: "rsa2048", "rsa-pkcs1", "ec", "ec-sec1", "ec-secp384r1"
function M.genkey(dir, kind, name)
  local path = dir .. "/" .. (name or kind) .. ".pem"
  local cmd
  if kind == "rsa2048" then
    cmd = "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " .. path
  elseif kind == "rsa-pkcs1" then
    cmd = "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 | openssl pkey -traditional -out " .. path
  elseif kind == "ec" then
    cmd = "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out " .. path
  elseif kind == "ec-sec1" then
    cmd = "openssl ecparam -name prime256v1 -genkey -noout -out " .. path
  elseif kind == "ec-secp384r1" then
    cmd = "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out " .. path
  elseif kind == "ed25519" then
    cmd = "openssl genpkey -algorithm ED25519 -out " .. path
  end
  assert(M.run(cmd), "openssl failed: " .. cmd)
  local pub = dir .. "/" .. (name or kind) .. ".pub.pem"
  assert(M.run("openssl pkey -in " .. path .. " -pubout -out " .. pub))
  return path, pub
end

--- Self-signed certificate for a key, with a given serial (hex).
function M.selfsigned(dir, keypath, serial_hex, name)
  local path = dir .. "/" .. (name or "cert") .. ".crt"
  assert(M.run("openssl req -new -x509 -key " .. keypath .. " -subj '/CN=wxhw test/O=Tencent' -days 30 -set_serial 0x" ..
    serial_hex .. " -out " .. path))
  return path
end

return M
