# gleam-infer under ctest: a Python fixture trains tiny runs, exports them and writes inputs and
# reference reconstructions; gleam-infer must match them within 1e-5 relative, and fail with a
# clear message (never a crash) without the ops library or on a malformed file.
set(_fx ${CMAKE_BINARY_DIR}/infer_fixture)
set(_script ${CMAKE_SOURCE_DIR}/tests/cpp/infer_fixture.py)
add_test(NAME infer_fixture COMMAND ${GLEAM_PYTHON} ${_script} --make ${_fx})
set_tests_properties(infer_fixture PROPERTIES FIXTURES_SETUP infer_inputs TIMEOUT 900
                     ENVIRONMENT "OMP_NUM_THREADS=1")

set(_ops --ops-lib $<TARGET_FILE:gleam_ops>)
foreach(_case 2d:pt2 cine:pt2 2d:pt 3d:pt cine:pt)
  string(REPLACE ":" ";" _parts ${_case})
  list(GET _parts 0 _kind)
  list(GET _parts 1 _ext)
  set(_name infer_${_kind}_${_ext})
  add_test(NAME ${_name} COMMAND gleam-infer --model ${_fx}/${_kind}.${_ext} --in ${_fx}/${_kind}_undersampled.h5
                                 --out ${_fx}/out_${_kind}_${_ext}.h5 --threads 1 ${_ops})
  set_tests_properties(${_name} PROPERTIES FIXTURES_REQUIRED infer_inputs FIXTURES_SETUP ${_name}_out TIMEOUT 300)
  add_test(NAME ${_name}_matches_python
           COMMAND ${GLEAM_PYTHON} ${_script} --check ${_fx}/out_${_kind}_${_ext}.h5 --reference ${_fx}/${_kind}_reference.h5)
  set_tests_properties(${_name}_matches_python PROPERTIES FIXTURES_REQUIRED "infer_inputs;${_name}_out" TIMEOUT 120)
endforeach()

# Failures: a clear one-line message on stderr (the pattern), exit status 2, no crash.
foreach(_ext pt2 pt)
  add_test(NAME infer_${_ext}_without_ops_lib
           COMMAND gleam-infer --model ${_fx}/2d.${_ext} --in ${_fx}/2d_undersampled.h5 --out ${_fx}/never.h5
                   --ops-lib none)
  set_tests_properties(infer_${_ext}_without_ops_lib PROPERTIES FIXTURES_REQUIRED infer_inputs
                       PASS_REGULAR_EXPRESSION "the model calls gleam::[a-z_]+.*which no loaded library registers")
endforeach()
add_test(NAME infer_missing_ops_lib COMMAND gleam-infer --model ${_fx}/2d.pt2 --in ${_fx}/2d_undersampled.h5
                                            --out ${_fx}/never.h5 --ops-lib ${_fx}/libmissing.so)
set_tests_properties(infer_missing_ops_lib PROPERTIES FIXTURES_REQUIRED infer_inputs
                     PASS_REGULAR_EXPRESSION "cannot load the gleam ops library .*libmissing.so")
add_test(NAME infer_malformed_file COMMAND gleam-infer --model ${_fx}/2d.pt2 --in ${_fx}/malformed.h5
                                           --out ${_fx}/never.h5 ${_ops})
set_tests_properties(infer_malformed_file PROPERTIES FIXTURES_REQUIRED infer_inputs
                     PASS_REGULAR_EXPRESSION "malformed.h5: dataset 'kspace' \\(2, 3, 16, 16\\) is not complex")
add_test(NAME infer_not_hdf5 COMMAND gleam-infer --model ${_fx}/2d.pt --in ${_fx}/not_hdf5.h5 --out ${_fx}/never.h5
                                     ${_ops})
set_tests_properties(infer_not_hdf5 PROPERTIES FIXTURES_REQUIRED infer_inputs
                     PASS_REGULAR_EXPRESSION "not_hdf5.h5: not an HDF5 file")
add_test(NAME infer_wrong_kind COMMAND gleam-infer --model ${_fx}/3d.pt --in ${_fx}/2d_undersampled.h5
                                       --out ${_fx}/never.h5 ${_ops})
set_tests_properties(infer_wrong_kind PROPERTIES FIXTURES_REQUIRED infer_inputs
                     PASS_REGULAR_EXPRESSION "a fastmri file, but the model reconstructs 3d data")
