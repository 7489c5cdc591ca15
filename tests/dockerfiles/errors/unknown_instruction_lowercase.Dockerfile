from busybox
runn echo
