-- A configuration for trying examples/gateway.lua against the built-in
-- emulator: its fixed test credentials (docs/emulator.md, "Test credentials").
--   lua5.4 bin/wxhw emulator --port 8870 --mp-callback http://127.0.0.1:8080/wx/push &
--   lua5.4 examples/gateway.lua examples/gateway.conf.lua &
--   curl -d '{"message":{"MsgType":"event","Event":"hello","FromUserName":"o1"}}' \
--        http://127.0.0.1:8870/__emulator/callbacks/mp/push      --> "outcome":"delivered"
-- WXHW_GATEWAY_PORT (default 8080) and WXHW_GATEWAY_DIR (the calls socket and
-- the workers' log; default build/examples/gateway of this checkout) override.
-- Real deployments write their own file with their own secrets.
local examples = dofile((debug.getinfo(1, "S").source:match("^@(.*)/") or ".") .. "/paths.lua")
local root, dir = examples.root, examples.dir("gateway", os.getenv("WXHW_GATEWAY_DIR"))

return {
  -- the Mini Program message push (Token, EncodingAESKey, appid) the emulator signs with
  mp = { token = "emulatortoken", encoding_aes_key = "EmuLatorEncodingAesKey0123456789abcdefghijk",
         appid = "wxa000000000000001" },
  http = { host = "127.0.0.1", port = tonumber(os.getenv("WXHW_GATEWAY_PORT")) or 8080 },
  calls = { socket_path = dir .. "/calls.sock", worker = { root .. "/bin/wxhw", "call-worker", "--simulate" },
            worker_log = dir .. "/workers.log", ring_timeout = 30 },
  relay = { host = "127.0.0.1", port = 0 },
}
