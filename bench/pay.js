// Helper of bench/pay: Authorization headers/s of the Node peer
// wechatpay-axios-plugin, the way its decorator builds them, key parsed once.
//   node bench/pay.js NODE_MODULES_DIR merchant_key.pem seconds
const path = require('path');
const fs = require('fs');
const mods = process.argv[2];
const { Rsa, Formatter } = require(path.join(mods, 'wechatpay-axios-plugin'));
const key = Rsa.from(fs.readFileSync(process.argv[3]), Rsa.KEY_TYPE_PRIVATE);
const secs = Number(process.argv[4] || 3);
const url = '/v3/iotmanage/devices?limit=100&offset=0';
let n = 0;
const t0 = process.hrtime.bigint();
const c0 = process.cpuUsage();
const deadline = t0 + BigInt(Math.round(secs * 1e9));
let now;
do {
  for (let i = 0; i < 16; i++) {
    const nonce = Formatter.nonce();
    const timestamp = Formatter.timestamp();
    const signature = Rsa.sign(Formatter.request('GET', url, timestamp, nonce, ''), key);
    Formatter.authorization('1900000001', nonce, signature, timestamp, '3775B6A45ACD588826D15E583A95F5DD2E8B3B41');
  }
  n += 16;
  now = process.hrtime.bigint();
} while (now < deadline);
// per CPU second (user time), as `openssl speed` and bench/pay.lua count
const cpu = process.cpuUsage(c0);
console.log((n / ((cpu.user + cpu.system) / 1e6)).toFixed(1));
