from busybox as Base
run echo hi
copy a b
ExPoSe 80
