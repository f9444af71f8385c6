-- POST one row (id from the sequence), Prefer: return=minimal.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Prefer"] = "return=minimal"
request = function()
  local body = '{"name":"bench","category":' .. math.random(1, 100) .. ',"price":' .. math.random(1, 10000) .. '}'
  return wrk.format("POST", "/rest/v1/items", nil, body)
end
