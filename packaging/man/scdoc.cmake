# cmake -DSCDOC=scdoc -DIN=page.scd -DOUT=page -DVERSION=x.y.z -P scdoc.cmake
# Substitutes @VERSION@, then renders the page with scdoc (which honours SOURCE_DATE_EPOCH, so
# package builds are reproducible).
file(READ "${IN}" _text)
string(REPLACE "@VERSION@" "${VERSION}" _text "${_text}")
file(WRITE "${OUT}.scd" "${_text}")
execute_process(COMMAND "${SCDOC}" INPUT_FILE "${OUT}.scd" OUTPUT_FILE "${OUT}"
                RESULT_VARIABLE _rc ERROR_VARIABLE _err)
file(REMOVE "${OUT}.scd")
if(NOT _rc EQUAL 0)
  file(REMOVE "${OUT}")
  message(FATAL_ERROR "scdoc failed on ${IN}: ${_err}")
endif()
