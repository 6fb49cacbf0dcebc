root:x:0:
daemon:x:1:
bin:x:2:
users:x:100:pyapp
nogroup:x:65534:
builder:x:1000:
pyapp:x:101:
