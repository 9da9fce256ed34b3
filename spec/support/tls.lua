--- Throw-away PKI for TLS specs, made with the openssl CLI (an independent
-- peer): a CA and a server certificate for 127.0.0.1 / localhost.
--
--   local tls = require "support.tls"
--   local pki = tls.generate()           -- or tls.generate{ cn = "other CA" }
--   pki.ca_file, pki.cert_file, pki.key_file, pki.dir
--   pki:cleanup()
local M = {}

local function sh(cmd)
  local ok, how, code = os.execute(cmd)
  if type(ok) == "number" then return ok == 0 end
  return ok == true and how == "exit" and code == 0
end

local PKI = {}
PKI.__index = PKI

function PKI:cleanup()
  if self.dir then sh("rm -rf '" .. self.dir .. "'") end
  self.dir = nil
end

--- Generates an EC P-256 CA and a server certificate signed by it.
function M.generate(o)
  o = o or {}
  local p = io.popen("mktemp -d /tmp/wxhw-tls.XXXXXX")
  local dir = p:read("*l")
  p:close()
  local ext = dir .. "/server.ext"
  local f = assert(io.open(ext, "w"))
  f:write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
  f:close()
  local cn = o.cn or "wxhw test CA"
  local steps = {
    ("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
      .. "-subj '/CN=%s' -keyout %s/ca.key -out %s/ca.pem"):format(cn, dir, dir),
    ("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj '/CN=127.0.0.1' "
      .. "-keyout %s/server.key -out %s/server.csr"):format(dir, dir),
    ("openssl x509 -req -in %s/server.csr -CA %s/ca.pem -CAkey %s/ca.key -CAcreateserial "
      .. "-days 2 -extfile %s -out %s/server.pem"):format(dir, dir, dir, ext, dir),
  }
  for _, cmd in ipairs(steps) do
    if not sh(cmd .. " >" .. dir .. "/openssl.log 2>&1") then
      local l = io.open(dir .. "/openssl.log")
      local msg = l and l:read("*a") or ""
      if l then l:close() end
      sh("rm -rf '" .. dir .. "'")
      return nil, "openssl failed: " .. msg
    end
  end
  return setmetatable({
    dir = dir, ca_file = dir .. "/ca.pem", cert_file = dir .. "/server.pem", key_file = dir .. "/server.key",
  }, PKI)
end

return M
