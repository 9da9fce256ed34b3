--- A complete callback + call gateway from one configuration file: this
-- example runs wxhw.gateway (lua/wxhw/gateway.lua) from the command line and,
-- required as `gateway`, is that module (configurations written for it keep
-- working).
--
-- As a program (Lua 5.4, after `make`): HTTP callbacks, call workers and the
-- media relay in one process (examples/gateway.conf.lua: a configuration for
-- the built-in emulator; it says how to send it a push):
--     lua5.4 examples/gateway.lua gateway.conf.lua
-- As the call daemon behind nginx (workers + relay, no HTTP):
--     lua5.4 examples/gateway.lua gateway.conf.lua --daemon
-- To check a configuration as nginx's init_by_lua will (exit status 1 and
-- every problem named; `nginx -t` does not run init_by_lua):
--     lua5.4 examples/gateway.lua gateway.conf.lua --check
-- Inside nginx (examples/nginx.conf), handlers that never block:
--     require("wxhw.gateway").nginx().mp   (reads $WXHW_GATEWAY_CONFIG)
--
-- The configuration file returns a table: its fields are described at the
-- top of lua/wxhw/gateway.lua; examples/gateway.conf.lua is one.
if arg and arg[0] and arg[0]:match("gateway%.lua$") and ... ~= "gateway" then
  dofile((arg[0]:match("^(.*)/") or ".") .. "/paths.lua") -- wxhw from this checkout
  os.exit(require("wxhw.gateway").main(arg))
end

return require "wxhw.gateway"
