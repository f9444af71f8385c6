-- GET 20 rows filtered and ordered, a random category each request.
request = function()
  return wrk.format("GET", "/rest/v1/items?category=eq." .. math.random(1, 100) .. "&order=price.desc&limit=20")
end
