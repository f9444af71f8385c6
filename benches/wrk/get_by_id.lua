-- GET one row by primary key, a random id each request.
request = function()
  return wrk.format("GET", "/rest/v1/items?id=eq." .. math.random(1, 100000))
end
