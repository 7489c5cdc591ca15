# just

# comments
