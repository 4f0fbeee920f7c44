module github.com/deploywatch/deploywatch/bench/healthbench

go 1.26.8

require github.com/deploywatch/deploywatch v0.0.0

require github.com/alexliesenfeld/health v0.8.0

replace github.com/deploywatch/deploywatch => ../..
