-- GET one row by primary key from a hot set of 100 ids (what a read cache is for).
request = function()
  return wrk.format("GET", "/rest/v1/items?id=eq." .. math.random(1, 100))
end
