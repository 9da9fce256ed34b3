-- Helper of bench/crypto: ops/s of key:sign and pub:verify for one key each.
local crypto = require "wxhw.crypto"
local rsa_path, ec_path, secs = arg[1], arg[2], tonumber(arg[3]) or 3
local bench = require "benchlib"

local msg = "GET\n/v3/iotmanage/devices?limit=100&offset=0\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n"
local out = {}
for _, path in ipairs({ rsa_path, ec_path }) do
  local key = assert(crypto.private_key(bench.read(path)))
  local pub = key:public_key()
  local sig = key:sign(msg)
  out[#out + 1] = string.format("%.1f", bench.rate(function() key:sign(msg) end, secs))
  out[#out + 1] = string.format("%.1f", bench.rate(function() pub:verify(msg, sig) end, secs))
end
print(table.concat(out, " "))
