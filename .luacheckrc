-- luacheck (Debian package lua-check): `make lint`, and a step of .ci/run.
-- The library runs under Lua 5.4 and LuaJIT, so both standard libraries are
-- known (code picks with `table.unpack or unpack`, `rawget(_G, "jit")`).
std = "lua54+luajit"
-- Long lines are a style choice here (tables of fields, error messages), not a defect.
max_line_length = false
-- Methods and callbacks keep the signature of their interface (store, transport,
-- hook, route handler) whether or not they use every argument.
unused_args = false
exclude_files = { "build/", "fuzz/corpus/", "fuzz/build/", ".luarocks/", "lua_modules/" }

-- OpenResty's `ngx` exists only inside nginx. The library asks wxhw.clock
-- (in_nginx, ngx, time, sleep), the one environment seam; only the two nginx
-- adapters read the global directly. No module may set it.
local NGX = { read_globals = { "ngx" } }
for _, f in ipairs{ "lua/wxhw/callback/ngx.lua", "lua/wxhw/transport/ngx.lua", "bench/gateway*.lua" } do
  files[f] = NGX
end

-- meant for `lua5.4 -i`: it leaves wxhw, creds, mp... as globals for the prompt
files["examples/repl.lua"] = { allow_defined_top = true }

-- busted specs; specs that run inside nginx (support.nginx) also see ngx. Specs
-- keep `n, err = f()` results they check only in some cases (311), helpers
-- they use in only some files (211), and take the first item of an iterator
-- with `for x in it do first = x; break end` (512).
files["spec/**/*.lua"] = { std = "+busted", read_globals = { "ngx" }, ignore = { "311", "211", "512" } }
files[".busted"] = { std = "lua54+luajit" }
