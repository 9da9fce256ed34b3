--- A raw HTTP/1.1 exchange that keeps `pump()` running while it waits: for
-- specs whose server (a gateway, a daemon) turns in this same process while
-- the request it serves is in flight.
--
--   local request = require "support.pumped_request"
--   local status, body, head = request(port, "POST", "/path?q", body, function() srv:step(0.01) end)
local socket = require "socket"

return function(port, method, target, body, pump, extra_headers)
  local c = assert(socket.connect("127.0.0.1", port))
  body = body or ""
  c:send(("%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%sConnection: close\r\n\r\n%s")
    :format(method, target, #body, extra_headers or "", body))
  c:settimeout(0)
  local buf, deadline = "", socket.gettime() + 10
  while socket.gettime() < deadline do
    pump()
    local data, err, partial = c:receive(65536)
    buf = buf .. (data or partial or "")
    if err == "closed" then break end
  end
  c:close()
  local status = tonumber(buf:match("^HTTP/1%.1 (%d+)"))
  local head, rbody = buf:match("^(.-)\r\n\r\n(.*)$")
  return status, rbody, head
end
